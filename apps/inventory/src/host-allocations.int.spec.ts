/**
 * `host_allocations`, what each host holds and how many VMs it has, as PostgreSQL keeps it (migrations
 * 1764600000000-host-allocations and 1764900000000-host-vm-counts),
 * against real PostgreSQL with inventory's own migrations: after any sequence of changes to VMs and
 * reservations it is what capacity.ts's one definition (`HELD_BY_HOST_SQL`) computes from the rows; a
 * database that had VMs before the migration gets them counted; and saga step 9's moves take their locks in
 * an order that neither a crossing move nor a VM creation on the same host can deadlock against.
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase, waitFor } from '@flexmig/testing';
import { inventoryEntities } from './entities';
import { inventoryMigrations } from './migrations';
import { HostAllocations1764600000000 } from './migrations/1764600000000-host-allocations';
import { HELD_BY_HOST_SQL, lockHostToFill } from './capacity';
import type { NatsBus } from '@flexmig/messaging';
import { CpuCompatClient } from './cpu/cpu-compat.client';
import { VmsService } from './vms/vms.service';
import { ReservationsService } from './reservations/reservations.service';

const HOSTS = ['ha-a', 'ha-b', 'ha-c', 'ha-d'];
const STATES = ['starting', 'running', 'stopped', 'error'] as const;

/** Anything that runs a statement: a DataSource, a transaction's manager, a query runner, a pg Client. */
interface Runs {
  query(sql: string, params: unknown[]): Promise<unknown>;
}

/** Inserts a VM of the cluster on `hostId` into `table` (`inventory.vms` from a session without the schema on its path); returns its id. */
async function insertVm(on: Runs, v: { clusterId: string; hostId: string; memoryMiB: number; vcpus: number; state: string }, table = 'vms'): Promise<string> {
  const id = randomUUID();
  await on.query(`INSERT INTO ${table} (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1::uuid, $1::text, $2, $3, $4, $5, 'Haswell', $6)`, [
    id, v.clusterId, v.hostId, v.memoryMiB, v.vcpus, v.state,
  ]);
  return id;
}

/** One change to `vms` or `reservations`, as a statement of inventory's (or an operator's) would make it. */
type Op =
  | { kind: 'create'; host: number; memory: number; vcpus: number; state: (typeof STATES)[number] }
  | { kind: 'state'; vm: number; state: (typeof STATES)[number] }
  | { kind: 'host-state'; host: number; state: (typeof STATES)[number] }
  | { kind: 'resize'; vm: number; memory: number; vcpus: number }
  | { kind: 'move'; vm: number; host: number }
  | { kind: 'reserve'; vm: number; host: number }
  | { kind: 'release'; reservation: number }
  | { kind: 'release-host'; host: number }
  | { kind: 'delete'; vm: number }
  | { kind: 'rolled-back'; host: number; memory: number }
  | { kind: 'truncate-reservations' };

const host = fc.nat({ max: HOSTS.length - 1 });
const index = fc.nat({ max: 50 });
const memory = fc.integer({ min: 1, max: 16 }).map((n) => n * 256);
const vcpus = fc.integer({ min: 1, max: 8 });
const state = fc.constantFrom(...STATES);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('create' as const), host, memory, vcpus, state }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('state' as const), vm: index, state }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('host-state' as const), host, state }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('resize' as const), vm: index, memory, vcpus }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('move' as const), vm: index, host }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('reserve' as const), vm: index, host }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), reservation: index }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release-host' as const), host }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), vm: index }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rolled-back' as const), host, memory }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate-reservations' as const) }) },
);

describe('host_allocations (what each host holds, kept by PostgreSQL)', () => {
  jest.setTimeout(120_000);
  let db: TestDatabase;
  let ds: DataSource;
  let clusterId: string;

  beforeAll(async () => {
    db = await startTestDatabase('host-allocations');
    await ensureDatabaseAndSchema(db.url, 'inventory');
    // first without the migration: the VMs already there must be counted when it runs
    const before = await initializeServiceDataSource(
      serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations.slice(0, inventoryMigrations.indexOf(HostAllocations1764600000000)), poolSize: 2 }),
    );
    [{ id: clusterId }] = await before.query(`INSERT INTO clusters (name) VALUES ('ha') RETURNING id`);
    for (const h of HOSTS) {
      await before.query(
        `INSERT INTO hosts (id, cluster_id, hostname, cpu_vendor, cpu_model_name, cpu_features, memory_mib, vcpus, driver, migration_address, state, last_heartbeat_at, registered_at)
         VALUES ($1, $2, $1, 'Intel', 'test', '["sse4_2"]', 1048576, 1024, 'sim', '127.0.0.1:1', 'up', now(), now())`,
        [h, clusterId],
      );
    }
    const vm = (hostId: string, memoryMiB: number, vcpus: number, state: string) => insertVm(before, { clusterId, hostId, memoryMiB, vcpus, state });
    await vm('ha-a', 2048, 2, 'running');
    await vm('ha-a', 1024, 1, 'starting');
    await vm('ha-a', 4096, 4, 'stopped');
    const moving = await vm('ha-b', 512, 3, 'running');
    await before.query(`INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus) VALUES ($1, $2, 'ha-c', 512, 3)`, [randomUUID(), moving]);
    await before.destroy();
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations, poolSize: 6 }));
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  type Held = { host_id: string; memory_mib: number; vcpus: number; vms: number };
  const counters = async (): Promise<Held[]> =>
    ds.query('SELECT host_id, memory_mib, vcpus, vms FROM host_allocations WHERE memory_mib <> 0 OR vcpus <> 0 OR vms <> 0 ORDER BY host_id');
  const recomputed = async (): Promise<Held[]> => ds.query(`SELECT * FROM (${HELD_BY_HOST_SQL}) held ORDER BY host_id`);

  it('given VMs and a reservation from before the migrations, then it counts what they hold (not a stopped VM\'s size) and every VM where it is (not a reservation)', async () => {
    expect(await counters()).toEqual([
      { host_id: 'ha-a', memory_mib: 3072, vcpus: 3, vms: 3 },
      { host_id: 'ha-b', memory_mib: 512, vcpus: 3, vms: 1 },
      { host_id: 'ha-c', memory_mib: 512, vcpus: 3, vms: 0 },
    ]);
  });

  it('given any sequence of changes to VMs and reservations, then after each one it equals what the rows add up to', async () => {
    const vmIds = async (): Promise<string[]> => (await ds.query('SELECT id FROM vms ORDER BY id')).map((r: { id: string }) => r.id);
    const pick = async (i: number): Promise<string | undefined> => {
      const ids = await vmIds();
      return ids.length ? ids[i % ids.length] : undefined;
    };
    const apply = async (o: Op): Promise<void> => {
      switch (o.kind) {
        case 'create':
          await insertVm(ds, { clusterId, hostId: HOSTS[o.host]!, memoryMiB: o.memory, vcpus: o.vcpus, state: o.state });
          return;
        case 'state': {
          const id = await pick(o.vm);
          if (id) await ds.query('UPDATE vms SET state = $2, updated_at = now() WHERE id = $1', [id, o.state]);
          return;
        }
        case 'host-state':
          await ds.query('UPDATE vms SET state = $2 WHERE host_id = $1', [HOSTS[o.host], o.state]);
          return;
        case 'resize': {
          const id = await pick(o.vm);
          if (id) await ds.query('UPDATE vms SET memory_mib = $2, vcpus = $3 WHERE id = $1', [id, o.memory, o.vcpus]);
          return;
        }
        case 'move': {
          const id = await pick(o.vm);
          if (id) await ds.query('UPDATE vms SET host_id = $2 WHERE id = $1', [id, HOSTS[o.host]]);
          return;
        }
        case 'reserve': {
          const id = await pick(o.vm);
          if (id) await ds.query('INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus) SELECT $1, id, $3, memory_mib, vcpus FROM vms WHERE id = $2', [randomUUID(), id, HOSTS[o.host]]);
          return;
        }
        case 'release': {
          const ids: { migration_id: string }[] = await ds.query('SELECT migration_id FROM reservations ORDER BY migration_id');
          if (ids.length) await ds.query('DELETE FROM reservations WHERE migration_id = $1', [ids[o.reservation % ids.length]!.migration_id]);
          return;
        }
        case 'release-host':
          await ds.query('DELETE FROM reservations WHERE host_id = $1', [HOSTS[o.host]]);
          return;
        case 'delete': {
          const id = await pick(o.vm);
          // step 9's statement shape: the reservation's deletion and the VM's change in one statement
          if (id) await ds.query('WITH released AS (DELETE FROM reservations WHERE vm_id = $1) DELETE FROM vms WHERE id = $1', [id]);
          return;
        }
        case 'rolled-back':
          await ds
            .transaction(async (m) => {
              await insertVm(m, { clusterId, hostId: HOSTS[o.host]!, memoryMiB: o.memory, vcpus: 1, state: 'running' });
              throw new Error('rolled back on purpose');
            })
            .catch((e: Error) => expect(e.message).toBe('rolled back on purpose'));
          return;
        case 'truncate-reservations':
          await ds.query('TRUNCATE reservations');
          return;
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        for (const o of ops) {
          await apply(o);
          expect({ after: o, held: await counters() }).toEqual({ after: o, held: await recomputed() });
        }
      }),
      { numRuns: 25, seed: 1_164_600 },
    );
  });

  it('given a session without inventory on its search path (an operator\'s psql), then its changes are counted too', async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const id = await insertVm(client, { clusterId, hostId: 'ha-d', memoryMiB: 256, vcpus: 1, state: 'running' }, 'inventory.vms');
      expect(await counters()).toEqual(await recomputed());
      await client.query('DELETE FROM inventory.vms WHERE id = $1', [id]);
      expect(await counters()).toEqual(await recomputed());
    } finally {
      await client.end();
    }
  });

  it('given the migration undone and run again, then nothing of it is left in between, and the table is filled again', async () => {
    const before = await counters();
    // the later migrations first, as TypeORM undoes them: down to this one
    const applied = async () => (await ds.query('SELECT 1 FROM typeorm_migrations WHERE name = $1', [new HostAllocations1764600000000().name])).length > 0;
    while (await applied()) await ds.undoLastMigration({ transaction: 'each' });
    const left = await ds.query(
      `SELECT (SELECT count(*)::int FROM pg_tables WHERE tablename = 'host_allocations') AS tables,
              (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE '%held%') AS triggers,
              (SELECT count(*)::int FROM pg_proc WHERE proname LIKE 'host_allocations%' OR proname LIKE '%held_change') AS functions`,
    );
    expect(left).toEqual([{ tables: 0, triggers: 0, functions: 0 }]);
    await ds.runMigrations({ transaction: 'each' });
    expect(await counters()).toEqual(before);
  });

  describe('saga step 9 beside other writers of the same hosts', () => {
    // a cpu-compat that says yes, asked through the client as inventory asks it (its verdicts kept)
    const cpu = new CpuCompatClient({ request: async (_c: unknown, q: { baseline: string }) => ({ baseline: q.baseline, compatible: true, missing: [], vendorMismatch: false, unchecked: [], reason: 'the host has every feature' }) } as unknown as NatsBus);
    let reservations: ReservationsService;
    let vms: VmsService;

    beforeAll(async () => {
      reservations = new ReservationsService(ds, cpu);
      vms = new VmsService(ds, undefined as never, cpu, undefined as never, undefined as never, undefined as never); // relocate reads and writes PostgreSQL only
      await ds.query('DELETE FROM reservations');
    });

    const runningVm = (hostId: string): Promise<string> => insertVm(ds, { clusterId, hostId, memoryMiB: 512, vcpus: 1, state: 'running' });

    /** How many sessions of this database wait for a lock now. */
    const lockWaiters = async (): Promise<number> =>
      (await ds.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0].n;

    it('given two VMs moving in opposite directions between the same hosts, let go at the same instant, then both moves commit and the counters stay exact', async () => {
      const x = await runningVm('ha-a');
      const y = await runningVm('ha-b');
      const [mx, my] = [randomUUID(), randomUUID()];
      await reservations.reserve({ migrationId: mx, vmId: x, hostId: 'ha-b' });
      await reservations.reserve({ migrationId: my, vmId: y, hostId: 'ha-a' });
      // both hosts' counters held by another transaction, so that both moves wait and then run together:
      // each move changes both counters, in two triggers' worth of changes (the VM's, the reservation's),
      // and the two moves must take them in one order
      const blocker = ds.createQueryRunner();
      await blocker.connect();
      await blocker.startTransaction();
      try {
        await blocker.query('SELECT 1 FROM host_allocations WHERE host_id = ANY($1) FOR UPDATE', [['ha-a', 'ha-b']]);
        const moves = Promise.allSettled([
          vms.relocate({ migrationId: mx, vmId: x, fromHostId: 'ha-a', toHostId: 'ha-b' }),
          vms.relocate({ migrationId: my, vmId: y, fromHostId: 'ha-b', toHostId: 'ha-a' }),
        ]);
        await waitFor('both moves to wait for the counters', async () => (await lockWaiters()) >= 2);
        await blocker.commitTransaction();
        expect((await moves).map((m) => (m.status === 'fulfilled' ? m.value.hostId : String(m.reason)))).toEqual(['ha-b', 'ha-a']);
      } finally {
        if (blocker.isTransactionActive) await blocker.rollbackTransaction();
        await blocker.release();
      }
      expect(await counters()).toEqual(await recomputed());
    });

    it('given a VM created on a host while another VM moves onto it, the creation holding the host first, then both commit and the counters stay exact', async () => {
      const x = await runningVm('ha-c');
      const migrationId = randomUUID();
      await reservations.reserve({ migrationId, vmId: x, hostId: 'ha-d' });
      // VM creation's transaction (vms.service.ts): the host's row lock, then the insert where the VM fits,
      // whose trigger takes the host's counter. The move waits for the host's row before it takes any
      // counter; taking the counters first, it would hold the one the creation then needs
      const creation = ds.createQueryRunner();
      await creation.connect();
      await creation.startTransaction();
      try {
        await lockHostToFill(creation.manager, 'ha-d');
        const move = vms.relocate({ migrationId, vmId: x, fromHostId: 'ha-c', toHostId: 'ha-d' });
        move.catch(() => undefined); // awaited below
        await waitFor('the move to wait for the host', async () => (await lockWaiters()) >= 1);
        await insertVm(creation, { clusterId, hostId: 'ha-d', memoryMiB: 256, vcpus: 1, state: 'starting' });
        await creation.commitTransaction();
        expect(await move).toMatchObject({ id: x, hostId: 'ha-d' });
      } finally {
        if (creation.isTransactionActive) await creation.rollbackTransaction();
        await creation.release();
      }
      expect(await counters()).toEqual(await recomputed());
    });
  });
});
