/**
 * VM creation against real PostgreSQL with inventory's own migrations: the host's room is checked by the
 * insert itself, begun after the host's row lock was granted (capacity.ts `lockHostToFill`,
 * `INSERT_STARTING_VM_IF_ROOM`), so two creations that wait together for the last room get one VM, and the
 * other is refused with what the first left free; and the cluster's stored CPU plan is read with the host
 * (one statement), asked of cpu-compat only when it is not current.
 *
 * The agent's StartVm and cpu-compat are answered in process: what is under test is inventory's reads and
 * writes, not the agent.
 */
import { DataSource } from 'typeorm';
import { ErrorCode, type FlexmigError } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase, waitFor } from '@flexmig/testing';
import { inventoryEntities } from '../entities';
import { inventoryMigrations } from '../migrations';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { ClusterCpuPlans } from '../clusters/cluster-cpu-plans';
import type { EventOutbox } from '../events/event-outbox';
import type { InventoryConfig } from '../config';
import { VmsService } from './vms.service';

describe('VM creation at a host of little room', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  let vms: VmsService;
  let clusterId: string;
  /** The subjects inventory asked of the bus (StartVm, cpu-compat's plan and verdicts), in order. */
  const asked: string[] = [];
  let planMode = 'Haswell';

  // cpu-compat and the agent, answered in process: every verdict compatible, the plan `planMode`, StartVm done
  const bus = {
    request: async (c: { subject: string }, q: { baseline?: string }) => {
      asked.push(c.subject);
      if (c.subject === 'cpu.cluster.plan') return { mode: planMode, reason: `every host runs ${planMode}`, holdingDown: [], withoutHost: [], hostModes: [] };
      if (c.subject.startsWith('cpu.')) return { baseline: q.baseline, compatible: true, missing: [], vendorMismatch: false, unchecked: [], reason: 'the host has every feature' };
      return {};
    },
  } as unknown as NatsBus;

  beforeAll(async () => {
    db = await startTestDatabase('vm-creation-capacity');
    await ensureDatabaseAndSchema(db.url, 'inventory');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations, poolSize: 6 }));
    // a cluster without an IMC mode (each VM gets the cluster's plan), vCPUs not overcommitted
    [{ id: clusterId }] = await ds.query(`INSERT INTO clusters (name, cpu_allocation_ratio) VALUES ('little', 1.0) RETURNING id`);
    await ds.query(
      `INSERT INTO hosts (id, cluster_id, hostname, cpu_vendor, cpu_model_name, cpu_features, memory_mib, vcpus, driver, migration_address, state, last_heartbeat_at, registered_at)
       VALUES ('little-a', $1, 'little-a', 'Intel', 'test', '["sse4_2"]', 4096, 2, 'sim', '127.0.0.1:1', 'up', now(), now())`,
      [clusterId],
    );
    const cpu = new CpuCompatClient(bus);
    const events = { committed: async () => undefined } as unknown as EventOutbox;
    vms = new VmsService(ds, bus, cpu, new ClusterCpuPlans(ds, cpu), events, { vmStartTimeoutMs: 5_000 } as InventoryConfig);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  beforeEach(async () => {
    await ds.query('DELETE FROM vms');
    asked.length = 0;
  });

  const held = async () => (await ds.query(`SELECT memory_mib, vcpus, vms FROM host_allocations WHERE host_id = 'little-a'`))[0];
  const create = (name: string, memoryMiB: number, vcpus = 1) => vms.create({ name, hostId: 'little-a', memoryMiB, vcpus });
  const refusal = async (p: Promise<unknown>): Promise<FlexmigError> => {
    try {
      await p;
    } catch (e) {
      return e as FlexmigError;
    }
    throw new Error('the creation was not refused');
  };

  it('given room, then the VM runs there and the host holds it', async () => {
    const vm = await create('fits', 1024);
    expect(vm).toMatchObject({ hostId: 'little-a', state: 'running', memoryMiB: 1024 });
    expect(await held()).toEqual({ memory_mib: 1024, vcpus: 1, vms: 1 });
  });

  it('given too little room, then it is refused with what is free, and nothing is written', async () => {
    await create('first', 3072);
    const e = await refusal(create('too-big', 2048));
    expect(e.code).toBe(ErrorCode.InsufficientCapacity);
    expect(e.message).toContain('host little-a has 1024 MiB and 1 vCPUs free');
    expect(e.details).toMatchObject({ need: { memoryMiB: 2048, vcpus: 1 }, free: { memoryMiB: 1024, vcpus: 1 } });
    expect(await ds.query(`SELECT name FROM vms ORDER BY name`)).toEqual([{ name: 'first' }]);
    expect(asked.filter((s) => s.endsWith('vm.start'))).toHaveLength(1); // the refused VM's agent was never asked
    // vCPUs too: the first's one and another's, of 2
    await create('second', 512);
    expect((await refusal(create('no-vcpu', 512))).details).toMatchObject({ free: { memoryMiB: 512, vcpus: 0 } });
  });

  it('given two creations waiting together for the host with room for one, then one runs and the other is refused with what the first left free', async () => {
    const blocker = ds.createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    let results: PromiseSettledResult<unknown>[];
    try {
      await blocker.query(`SELECT 1 FROM hosts WHERE id = 'little-a' FOR UPDATE`);
      const both = Promise.allSettled([create('race-1', 3072), create('race-2', 3072)]);
      const waiters = async () => (await ds.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`))[0].n;
      await waitFor('both creations to wait for the host', async () => (await waiters()) >= 2);
      await blocker.commitTransaction();
      results = await both;
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
    }
    const ran = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as FlexmigError);
    expect(ran).toHaveLength(1);
    expect(refused.map((e) => [e.code, e.details])).toEqual([[ErrorCode.InsufficientCapacity, expect.objectContaining({ free: { memoryMiB: 1024, vcpus: 1 } })]]);
    expect(await held()).toEqual({ memory_mib: 3072, vcpus: 1, vms: 1 });
  });

  it("given the cluster's plan stored and current, then each VM gets its mode without asking cpu-compat; a host joining makes it asked once more", async () => {
    const plans = () => asked.filter((s) => s === 'cpu.cluster.plan').length;
    // the host has room for two: each VM goes again once its baseline is known
    const baselineOf = async (name: string) => {
      const vm = await create(name, 256);
      await ds.query('DELETE FROM vms');
      return vm.cpuBaseline;
    };
    await ds.query('DELETE FROM cluster_cpu_plans');
    planMode = 'Haswell';
    expect(await baselineOf('planned-1')).toBe('Haswell');
    expect(plans()).toBe(1); // no row: asked, and nothing stored
    await ds.query(`INSERT INTO cluster_cpu_plans (cluster_id) VALUES ($1)`, [clusterId]); // a registration's invalidate
    await baselineOf('planned-2');
    expect(plans()).toBe(2); // a row, not current: asked, and stored
    expect(await baselineOf('planned-3')).toBe('Haswell');
    expect(plans()).toBe(2); // read with the host, current: not asked
    planMode = 'Skylake-Client';
    await ds.query('UPDATE cluster_cpu_plans SET generation = generation + 1 WHERE cluster_id = $1', [clusterId]); // a host joined
    expect(await baselineOf('replanned')).toBe('Skylake-Client');
    expect(await baselineOf('replanned-2')).toBe('Skylake-Client');
    expect(plans()).toBe(3);
  });
});
