import { Client } from 'pg';
import { waitFor } from '@flexmig/testing';
import { sleep } from '@flexmig/timing';
import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`transaction count test skipped: ${unavailable}`);

/** issue 11: the saga close to its floor, one commit per step (nine) plus admission's, and a little room. */
const maxTransactionsPerMigration = 11;
const migrations = 5;
/**
 * PostgreSQL 15 writes a backend's counters to pg_stat_database when it goes idle, but at most once a
 * second, else within 10 s (PGSTAT_IDLE_INTERVAL): a count is final once it has not moved for longer.
 */
const statsSettledAfterMs = 11_000;

/**
 * The scheduler on a database of its own (inventory keeps its own), so that PostgreSQL's own count of
 * committed transactions in it (pg_stat_database.xact_commit) is the scheduler's alone. Its reconcile tick
 * is far away (leases outlive it), so what is counted is what the migrations cost: each request, each step,
 * the events. Nothing reads the scheduler while counting: each migration's end is its `migration.completed`
 * event on NATS.
 */
describeIf('what a migration costs the scheduler in PostgreSQL transactions', () => {
  const hosts = [
    { id: 'tx1', cpu: 'Icelake' },
    { id: 'tx2', cpu: 'Icelake' },
  ];
  const database = 'flexmig_scheduler_alone';
  const h: Harness = new Harness({
    hosts,
    // read when the scheduler starts, once PostgreSQL runs (and has its port)
    get scheduler() {
      return { DATABASE_URL: h.pg.url(database), RECONCILE_INTERVAL_MS: '600000', LEASE_TTL_MS: '1800000' };
    },
    agent: { SIM_TIME_SCALE: '0' },
  });
  let stats: Client;

  beforeAll(async () => {
    await h.start();
    stats = new Client({ connectionString: h.pg.url('postgres') });
    await stats.connect();
  }, 180_000);
  afterAll(async () => {
    await stats?.end();
    await h.stop();
  });

  const committed = async (): Promise<number> => {
    const r = await stats.query('SELECT xact_commit::bigint AS n FROM pg_stat_database WHERE datname = $1', [database]);
    return Number(r.rows[0].n);
  };
  /** The count once every backend has reported (it stops moving). */
  const settled = async (): Promise<number> => {
    let last = await committed();
    let since = Date.now();
    return waitFor('the transaction count to settle', async () => {
      await sleep(500);
      const now = await committed();
      if (now !== last) [last, since] = [now, Date.now()];
      return Date.now() - since > statsSettledAfterMs ? now : undefined;
    }, { timeoutMs: 90_000, intervalMs: 0 });
  };

  const completions = new Map<string, () => void>();
  const completed = (id: string) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`migration ${id} did not complete within 60 s`)), 60_000);
      completions.set(id, () => (clearTimeout(t), resolve()));
    });

  it(`is at most ${maxTransactionsPerMigration} per migration`, async () => {
    const sub = h.nc.subscribe(`${h.prefix}.events.migration.completed`, {
      callback: (_e, m) => completions.get(JSON.parse(new TextDecoder().decode(m.data)).subject)?.(),
    });
    const vms = [];
    for (let i = 0; i < migrations + 1; i++) vms.push(await h.createVm(`tx-${i}`, 'tx1', 512));
    const migrate = async (vmId: string) => {
      const r = await h.http('scheduler', 'POST', '/api/v1/migrations', { vmId, targetHostId: 'tx2' });
      if (r.status !== 202) throw new Error(`migrating ${vmId}: ${r.status} ${JSON.stringify(r.body)}`);
      const done = completed(r.body.id);
      await done;
      return r.body.id as string;
    };
    await migrate(vms[0].id); // the first one also warms the scheduler's caches and pool

    const before = await settled();
    const ids = [];
    for (const vm of vms.slice(1)) ids.push(await migrate(vm.id));
    const after = await settled();
    sub.unsubscribe();

    const perMigration = (after - before) / migrations;
    console.log(`${after - before} PostgreSQL transactions for ${migrations} migrations: ${perMigration} each`);
    expect(perMigration).toBeGreaterThanOrEqual(9); // one commit per step at least: the count is real
    expect(perMigration).toBeLessThanOrEqual(maxTransactionsPerMigration);
    for (const [i, id] of ids.entries()) await h.expectCleanEnd(id, vms[i + 1].id);
  }, 300_000);
});
