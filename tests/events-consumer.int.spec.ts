import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { HostDown, HostUp } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { startTestNats, waitFor, type TestNats } from '@flexmig/testing';

// examples/events-consumer.mjs, the example durable subscriber (docs/events.md), as a real process against
// a real NATS with the events stream flexmig's services create: every event once, acknowledged, and after a
// restart it resumes after the last event it acknowledged.
const example = path.resolve(__dirname, '../examples/events-consumer.mjs');

interface Printed {
  sequence: number;
  deliveries: number;
  type: string;
  id: string;
  data: Record<string, unknown>;
}

class ExampleConsumer {
  readonly printed: Printed[] = [];
  readonly stderr: string[] = [];
  private readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(nats: TestNats, args: string[] = []) {
    const env = { ...process.env, NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, ...nats.serviceEnv('subscriber') };
    this.child = spawn(process.execPath, [example, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.printed.push(JSON.parse(line) as Printed));
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  async printedAtLeast(n: number): Promise<Printed[]> {
    return waitFor(`${n} events printed by the example (stderr: ${this.stderr.join(' | ')})`, () => this.printed.length >= n && this.printed);
  }

  /** SIGTERM: it stops after the event in hand is acknowledged, and exits 0. */
  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exited;
  }
}

describe.each([
  ['without NATS identities', false],
  ['with the subscriber identity (NATS auth)', true],
])('examples/events-consumer.mjs: a durable subscriber of the events stream, %s', (_, auth) => {
  let nats: TestNats;
  let bus: NatsBus;
  // looks at the consumers' state (with NATS auth: the tests' observer identity, which may look everywhere)
  let observer: NatsConnection;
  let jsm: JetStreamManager;
  const running: ExampleConsumer[] = [];
  const start = (args: string[] = []) => {
    const c = new ExampleConsumer(nats, args);
    running.push(c);
    return c;
  };
  const hostUp = (hostId: string) => bus.publishEvent(HostUp, { hostId }, { id: `${hostId}:up`, source: 'test', subject: hostId });

  beforeAll(async () => {
    nats = await startTestNats('events_consumer', { auth });
    // inventory publishes host events: its identity when NATS requires one
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'events-consumer-test', credsFile: nats.serviceEnv('inventory').NATS_CREDS });
    await bus.ensureEventsStream();
    observer = await connect({ servers: nats.url, ...nats.observer() });
    jsm = await jetstreamManager(observer);
  });

  afterAll(async () => {
    await Promise.all(running.map((c) => c.stop()));
    await bus?.close();
    await observer?.close();
    await nats?.stop();
  });

  it('reads every event once and acknowledges it; after a restart it resumes after the last one acknowledged', async () => {
    for (const h of ['h1', 'h2', 'h3']) await hostUp(h);
    const first = start();
    expect((await first.printedAtLeast(3)).map((e) => [e.type, e.id, e.deliveries])).toEqual([
      ['host.up', 'h1:up', 1],
      ['host.up', 'h2:up', 1],
      ['host.up', 'h3:up', 1],
    ]);
    expect(await first.stop()).toBe(0);

    // while it is away: two new events, and a re-publish of one it has seen (the stream drops it: same id)
    await hostUp('h4');
    await hostUp('h3');
    await bus.publishEvent(HostDown, { hostId: 'h2', lastHeartbeatAt: new Date().toISOString() }, { id: 'h2:down', source: 'test', subject: 'h2' });

    const again = start();
    const resumed = await again.printedAtLeast(2);
    const state = await waitFor('the consumer to have nothing pending', async () => {
      const info = await jsm.consumers.info(bus.eventsStream, 'subscriber');
      return info.num_pending === 0 && info.num_ack_pending === 0 && info;
    });
    expect(resumed.map((e) => [e.type, e.id, e.sequence])).toEqual([
      ['host.up', 'h4:up', 4],
      ['host.down', 'h2:down', 5],
    ]);
    expect(state.ack_floor.stream_seq).toBe(5);
    expect(await again.stop()).toBe(0);
  });

  if (!auth) {
    it('another subscriber (its own durable name, a type filter) replays the stream from its oldest event', async () => {
      const downs = start(['--durable', 'only-downs', '--types', 'host.down']);
      const [event] = await downs.printedAtLeast(1);
      expect(event).toMatchObject({ type: 'host.down', id: 'h2:down', deliveries: 1, data: { hostId: 'h2' } });
      const info = await waitFor('the filtered consumer to have nothing pending', async () => {
        const i = await jsm.consumers.info(bus.eventsStream, 'only-downs');
        return i.num_pending === 0 && i.num_ack_pending === 0 && i;
      });
      expect(info.delivered.consumer_seq).toBe(1);
      expect(downs.printed).toHaveLength(1);
    });
  } else {
    // the subscriber identity may use one durable only (docs/security.md): another name is refused, plainly
    it('with the subscriber identity, a durable of another name is refused and the example says why', async () => {
      const other = start(['--durable', 'other']);
      expect(await other.exited).toBe(1);
      expect(other.stderr.join('\n')).toMatch(/cannot be read/);
    });
  }
});
