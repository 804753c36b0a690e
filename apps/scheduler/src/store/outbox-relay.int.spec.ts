import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { MigrationStepCompleted } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { EventsTap, startTestDatabase, startTestNats, TcpProxy, TestDatabase, TestNats, waitFor } from '@flexmig/testing';
import { schedulerEntities } from '../entities';
import { schedulerMigrations } from '../migrations';
import { DirectPublisher } from './direct-publisher';
import { OutboxRelay, outboxHandOffMs } from './outbox-relay';

/**
 * Two replicas share one outbox. Replica A's DirectPublisher publishes A's rows from memory and deletes
 * them with its next statement; replica B's relay must leave them alone meanwhile, or every such event goes
 * out twice (JetStream drops the repeat by id, but core NATS subscribers see both: 472 terminal events of
 * 2,000 migrations in bench/control-plane). A row A left behind (a crash) is B's once the hand-off time
 * has passed, and a migration's events keep their order throughout. Real PostgreSQL and NATS.
 */
describe('OutboxRelay beside another replica', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let nats: TestNats;
  let ds: DataSource;
  let bus: NatsBus;
  let tap: EventsTap;
  let relayB: OutboxRelay;
  let directB: DirectPublisher;
  /** Event ids as core NATS subscribers receive them, in order. */
  let received: string[] = [];

  const step = (migrationId: string, n: number) => ({
    id: `${migrationId}:step-completed:${n}`,
    data: { migrationId, vmId: randomUUID(), step: n, stepName: 'verify-compatibility' as const, attempt: 1, durationMs: 3 },
  });
  /** An outbox row as a transition of `writer` commits it (null: before the column existed), `ageMs` old. */
  const write = async (migrationId: string, n: number, writer: string | null, ageMs = 0): Promise<string> => {
    const e = step(migrationId, n);
    expect(MigrationStepCompleted.data.safeParse(e.data).success).toBe(true);
    await ds.query(
      `INSERT INTO outbox (event_id, type, subject, data, created_at, writer)
       VALUES ($1, 'migration.step-completed', $2, $3::jsonb, now() - make_interval(secs => $4::double precision / 1000), $5)`,
      [e.id, migrationId, JSON.stringify(e.data), ageMs, writer],
    );
    return e.id;
  };
  const waiting = async (migrationId: string): Promise<string[]> =>
    ((await ds.query('SELECT event_id FROM outbox WHERE subject = $1 ORDER BY seq', [migrationId])) as { event_id: string }[]).map((r) => r.event_id);
  /** Flushes B, then waits until NATS has delivered what B published. */
  const flushB = async () => {
    await relayB.flush();
    received = await tap.settled();
  };

  beforeAll(async () => {
    db = await startTestDatabase('outbox-relay');
    nats = await startTestNats('outbox-relay');
    await ensureDatabaseAndSchema(db.url, 'scheduler');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'scheduler', entities: schedulerEntities, migrations: schedulerMigrations, poolSize: 2 }));
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'outbox-relay-test' });
    await bus.ensureEventsStream();
    tap = await EventsTap.open(nats.url, nats.prefix);
    directB = new DirectPublisher(bus);
    relayB = new OutboxRelay(ds, bus, directB, { schedulerId: 'replica-b', reconcileIntervalMs: 1_000 });
  });

  afterAll(async () => {
    await tap?.close();
    await bus?.close();
    await ds?.destroy();
    await nats?.stop();
    await db?.stop();
  });

  beforeEach(() => {
    tap.clear();
    received = [];
  });

  it('given rows replica A wrote a moment ago, then B leaves them (and what follows them of the same migration) to A', async () => {
    const x = randomUUID();
    const fromA = await write(x, 1, 'replica-a');
    const fromBAfter = await write(x, 2, 'replica-b');
    await flushB();
    expect(received).toEqual([]);
    expect(await waiting(x)).toEqual([fromA, fromBAfter]);
  });

  it('given rows of B itself or rows with no writer, then B publishes them at once, each once', async () => {
    const y = randomUUID();
    const z = randomUUID();
    const own = await write(y, 1, 'replica-b');
    const legacy = await write(z, 1, null);
    await flushB();
    expect(received.sort()).toEqual([own, legacy].sort());
    expect(await waiting(y)).toEqual([]);
    expect(await waiting(z)).toEqual([]);
  });

  it('given a row A left behind for longer than the hand-off time, then B publishes it and then the rest of its migration, in order', async () => {
    const handOff = outboxHandOffMs(1_000);
    expect(handOff).toBe(5_000);
    const x = randomUUID();
    const left = await write(x, 1, 'replica-a', handOff + 1_000);
    const next = await write(x, 2, 'replica-b');
    const young = await write(x, 3, 'replica-a');
    const after = await write(x, 4, 'replica-b');
    await flushB();
    // A's young row 3 is still A's: 4 waits behind it
    expect(received).toEqual([left, next]);
    expect(await waiting(x)).toEqual([young, after]);
  });

  it('given a migration of another replica that also has an older row of B in the outbox, then only what comes before its first row of A goes', async () => {
    const x = randomUUID();
    const first = await write(x, 1, 'replica-b');
    const ofA = await write(x, 2, 'replica-a');
    await flushB();
    expect(received).toEqual([first]);
    expect(await waiting(x)).toEqual([ofA]);
  });

  it('given a migration whose events B publishes itself, then its relay leaves the rows just committed to the DirectPublisher, and takes them once they are old', async () => {
    // a transition's rows are committed a moment before DirectPublisher.publish is called with them
    const m = randomUUID();
    directB.adopt(m);
    const committed = await write(m, 1, 'replica-b');
    await flushB();
    expect(received).toEqual([]);
    expect(await waiting(m)).toEqual([committed]);
    // never handed over (a throw between commit and publish): past the hand-off time the relay sends it
    await ds.query("UPDATE outbox SET created_at = now() - interval '6 seconds' WHERE event_id = $1", [committed]);
    await flushB();
    expect(received).toEqual([committed]);
    expect(await waiting(m)).toEqual([]);
  });

  it('publishes a migration\'s events with the trace of the request that created it, and an event whose subject is no migration\'s without one', async () => {
    const x = randomUUID();
    const traceParent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await ds.query(
      `INSERT INTO migrations (id, vm_id, cluster_id, source_host_id, target_host_id, state, saga, vm, policy, target_address, version, created_at, updated_at, trace_parent)
       VALUES ($1, $2, $3, 'host-a', 'host-b', 'running', '{}', '{}', '{}', 'sim://host-b', 1, now(), now(), $4)`,
      [x, randomUUID(), randomUUID(), traceParent],
    );
    const traced = await write(x, 1, null);
    // a subject that is not a UUID (no migration has it) must not break the lookup of the others' traces
    const untraced = await write(randomUUID(), 1, null);
    await ds.query(`UPDATE outbox SET subject = 'host-a' WHERE event_id = $1`, [untraced]);
    await flushB();
    expect(received.sort()).toEqual([traced, untraced].sort());
    const published = (id: string) => tap.received.find((e) => e.id === id) as unknown as Record<string, unknown>;
    expect(published(traced).traceparent).toBe(traceParent);
    expect(published(untraced).traceparent).toBeUndefined();
  });

  it('given NATS gone (a restart), then a flush opens no transaction for publishes that can only time out, and the reconnect sends what waited', async () => {
    const proxy = await new TcpProxy(Number(new URL(nats.url).port)).start();
    const viaProxy = await NatsBus.connect({ url: `nats://${proxy.url}`, prefix: nats.prefix, name: 'outbox-relay-outage' });
    // no reconcile tick runs here: only the reconnect can flush it
    const relayC = new OutboxRelay(ds, viaProxy, new DirectPublisher(viaProxy), { schedulerId: 'replica-c', reconcileIntervalMs: 1_000 });
    try {
      await proxy.stop(); // the connection closed and nothing listening: as while NATS restarts
      await waitFor('the client to see the disconnect', async () => !viaProxy.reachable || undefined);
      const m = randomUUID();
      const own = await write(m, 1, 'replica-c');
      const transactions = jest.spyOn(ds, 'transaction');
      await relayC.flush();
      expect(transactions).not.toHaveBeenCalled();
      transactions.mockRestore();
      expect(await waiting(m)).toEqual([own]);
      await proxy.start(); // NATS back on its port
      await waitFor('the reconnect to publish what waited', async () => (await waiting(m)).length === 0 || undefined, { timeoutMs: 10_000 });
      expect(await tap.settled()).toEqual([own]);
    } finally {
      relayC.onApplicationShutdown();
      await viaProxy.close();
      await proxy.stop();
    }
  });
});
