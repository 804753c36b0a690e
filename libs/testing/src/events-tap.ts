import { randomUUID } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from './infra';

/** A CloudEvent as a subscriber reads it. */
export interface TappedEvent {
  id: string;
  type: string;
  source: string;
  subject?: string;
  time: string;
  data: Record<string, unknown>;
  [extension: string]: unknown;
}

/**
 * Every event a suite's services publish, as a core NATS subscriber on `<prefix>.events.>` receives it: in
 * the server's order, each copy (JetStream de-duplicates the stream by id; core subscribers see repeats).
 * `settled()` tells when everything published before it has arrived.
 */
export class EventsTap {
  readonly received: TappedEvent[] = [];

  private constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  static async open(natsUrl: string, prefix: string): Promise<EventsTap> {
    const nc = await connect({ servers: natsUrl });
    const tap = new EventsTap(nc, prefix);
    nc.subscribe(`${prefix}.events.>`, { callback: (_e, m) => void tap.received.push(m.json()) });
    await nc.flush(); // the subscription is the server's before anything is published
    return tap;
  }

  /**
   * The ids received, once every event published (and acknowledged) before the call has arrived: a marker
   * sent after them comes after them. Markers are left out.
   */
  async settled(): Promise<string[]> {
    const marker = `marker-${randomUUID()}`;
    this.nc.publish(`${this.prefix}.events.tap-marker`, JSON.stringify({ id: marker }));
    await waitFor('the marker on NATS', () => this.received.some((e) => e.id === marker) || undefined, { timeoutMs: 10_000 });
    return this.ids();
  }

  /** The ids received so far, markers left out. */
  ids(): string[] {
    return this.received.filter((e) => !e.id.startsWith('marker-')).map((e) => e.id);
  }

  /** Forgets what was received. */
  clear(): void {
    this.received.length = 0;
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}
