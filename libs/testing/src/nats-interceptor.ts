import net from 'node:net';
import { type NatsFrame, NatsFrameReader } from './nats-frames';
import { freePort } from './processes';

/** Which way a frame travels through the interceptor. */
export type NatsDirection = 'to-server' | 'to-client';

/** What to do with the messages a rule matches. */
export interface InterceptRule {
  direction: NatsDirection;
  /** Whether a message (PUB/HPUB to the server, MSG/HMSG to the client) is this rule's. */
  match(subject: string, payload: Buffer): boolean;
  /** Hold the message this long before it goes on (later frames overtake it). */
  delayMs?: number;
  /** Send a second copy of it this long after it arrived. */
  duplicateAfterMs?: number;
  /** Never pass it on: the message lost on the way (the other options do not apply). */
  drop?: boolean;
}

/** How many messages the rules delayed, duplicated and dropped, per direction. */
export interface InterceptCounts {
  delayed: Record<NatsDirection, number>;
  duplicated: Record<NatsDirection, number>;
  dropped: Record<NatsDirection, number>;
}

const messageOps = new Set(['PUB', 'HPUB', 'MSG', 'HMSG']);

/**
 * A NATS proxy for one client process that can delay, repeat or drop chosen messages, both the client's
 * publications (commands, replies it sends) and the messages delivered to it (requests, replies it gets):
 * the duplicated and delayed messages of a real network, with the client's own connection, subscriptions and
 * inbox, which a second client re-publishing them cannot give. Frames are whole NATS protocol frames
 * (NatsFrameReader); without a rule that matches, every byte passes unchanged and in order. Plain TCP only
 * (a TLS connection would need the proxy to terminate it).
 */
export class NatsInterceptor {
  port = 0;
  private server?: net.Server;
  private rules: InterceptRule[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly counts: InterceptCounts = { delayed: { 'to-server': 0, 'to-client': 0 }, duplicated: { 'to-server': 0, 'to-client': 0 }, dropped: { 'to-server': 0, 'to-client': 0 } };

  constructor(private readonly upstreamPort: number, private readonly upstreamHost = '127.0.0.1') {}

  /** The URL a client connects to instead of the server's. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    return this;
  }

  /** Adds a rule (the first rule that matches a message decides); returns its removal. */
  intercept(rule: InterceptRule): () => void {
    this.rules.push(rule);
    return () => {
      this.rules = this.rules.filter((r) => r !== rule);
    };
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.upstreamPort, this.upstreamHost);
    this.sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    for (const s of [client, upstream]) s.on('error', close).on('close', close);
    this.relay(client, upstream, 'to-server', close);
    this.relay(upstream, client, 'to-client', close);
  }

  private relay(from: net.Socket, to: net.Socket, direction: NatsDirection, close: () => void): void {
    const reader = new NatsFrameReader();
    from.on('data', (chunk: Buffer) => {
      let frames: NatsFrame[];
      try {
        frames = reader.push(chunk);
      } catch {
        close(); // not NATS: a broken connection, as a server would make it
        return;
      }
      for (const f of frames) this.forward(f, to, direction);
    });
  }

  private forward(f: NatsFrame, to: net.Socket, direction: NatsDirection): void {
    const write = () => to.destroyed || to.write(f.raw);
    const rule = messageOps.has(f.op) ? this.rules.find((r) => r.direction === direction && r.match(f.subject!, f.payload)) : undefined;
    if (!rule) {
      write();
      return;
    }
    if (rule.drop) {
      this.counts.dropped[direction]++;
      return;
    }
    if (rule.delayMs) {
      this.counts.delayed[direction]++;
      this.after(rule.delayMs, write);
    } else {
      write();
    }
    if (rule.duplicateAfterMs !== undefined) {
      this.counts.duplicated[direction]++;
      this.after(rule.duplicateAfterMs, write);
    }
  }

  private after(ms: number, send: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      send(); // a socket closed meanwhile drops it, as the network would
    }, ms);
    this.timers.add(t);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
