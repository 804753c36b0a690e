import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { createSaga } from '@flexmig/saga';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import { LeaseFence } from '../engine/lease-fence';
import { ClusterSettingsService, type StoredClusterSettings } from '../settings/cluster-settings.service';
import type { DirectPublisher } from '../store/direct-publisher';
import { type DrivenMigration, MigrationStore, type NewMigration, type Transition } from '../store/migration-store';
import type { OutboxRelay } from '../store/outbox-relay';
import type { QueuedMigration, SlotHolder } from './admission';
import { Admission } from './admission.service';

/**
 * Admission's transaction, statement by statement, against a connection that answers as PostgreSQL would
 * (the limits and the queue on real PostgreSQL: migrations.int.spec.ts and the scheduler's e2e tests).
 * A request that starts at once costs three statements between BEGIN and COMMIT: the dispatch lock, one
 * read of the queue, the driven migrations and the settings, and the migration stored already started.
 */
describe('Admission: one request, one transaction of few statements', () => {
  const cluster = randomUUID();
  const config = {
    schedulerId: 'replica-a',
    leaseTtlMs: 10_000,
    limits: { maxOutboundPerHost: 1, maxInboundPerHost: 10, maxPerCluster: 10 },
  } as SchedulerConfig;

  let lockFree: boolean;
  let view: { queued: QueuedMigration[]; active: SlotHolder[]; settings: StoredClusterSettings[] };
  let stored: Map<string, DrivenMigration>;
  let sent: { name?: string; values: unknown[] }[];
  let admission: Admission;
  let handedOver: Transition[][];
  const adopted: string[] = [];

  const connection = {
    query: async (q: { name?: string; values: unknown[] }) => {
      sent.push(q);
      switch (q.name) {
        case 'scheduler_try_dispatch_lock':
          return { rows: [{ locked: lockFree }] };
        case 'scheduler_queue_view':
          return { rows: [view] };
        case 'scheduler_starting':
          return { rows: (q.values[0] as string[]).map((id) => stored.get(id)) };
        default:
          return { rows: [] };
      }
    },
  };
  const m = { queryRunner: { connect: async () => connection } } as unknown as EntityManager;
  const db = { transaction: async <T>(fn: (m: EntityManager) => Promise<T>) => fn(m) } as unknown as DataSource;
  const direct = {
    deletingAcknowledged: <T>(statement: (ids: string[]) => Promise<T>) => statement([]),
    adopt: (id: string) => adopted.push(id),
    publish: () => undefined,
  } as unknown as DirectPublisher;

  beforeEach(() => {
    lockFree = true;
    view = { queued: [], active: [], settings: [] };
    stored = new Map();
    sent = [];
    handedOver = [];
    const clock = { now: () => Date.now() } as unknown as DbClock;
    const store = new MigrationStore(db, config, clock, new LeaseFence(10_000), direct);
    admission = new Admission(db, store, new ClusterSettingsService(db, config), {} as OutboxRelay, direct);
    admission.onStarted((t) => handedOver.push(t));
  });
  afterEach(() => admission.onApplicationShutdown());

  const request = (sourceHostId = 'host-a', targetHostId = 'host-b') => {
    const id = randomUUID();
    const ref = { migrationId: id, vmId: randomUUID(), sourceHostId, targetHostId };
    const row = {
      id,
      vmId: ref.vmId,
      clusterId: cluster,
      sourceHostId,
      targetHostId,
      saga: createSaga(ref, Date.now()),
      vm: { id: ref.vmId, name: 'vm', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' },
      targetAddress: null,
      requestedBy: 'alice',
      placement: null,
      traceParent: null,
      createdAt: new Date(),
    } as unknown as Omit<NewMigration, 'policy'>;
    const requested = { event_id: `${id}:requested`, type: 'migration.requested', subject: id, data: { migrationId: id } };
    return { row, requested };
  };
  const queuedOne = (sourceHostId: string, targetHostId = 'host-z'): QueuedMigration => {
    const { row } = request(sourceHostId, targetHostId);
    stored.set(row.id, { ...row, state: 'queued', version: 1, policy: {} } as unknown as DrivenMigration);
    return { id: row.id, clusterId: cluster, sourceHostId, targetHostId };
  };
  const names = () => sent.map((q) => q.name);
  const insertOf = () => sent.find((q) => q.name === 'scheduler_insert_migration')!.values;

  it('given free limits, then the migration is stored started in three statements and handed to the engine', async () => {
    const { row, requested } = request();
    const admitted = await admission.admit(row, {}, requested);
    expect(names()).toEqual(['scheduler_try_dispatch_lock', 'scheduler_queue_view', 'scheduler_insert_migration']);
    // the view reads the queue's window and the newcomer's cluster's settings
    expect(sent[1]!.values).toEqual([1000, cluster]);
    expect(insertOf()[5]).toBe('running');
    expect(admitted).toMatchObject({ id: row.id, state: 'running', leaseOwner: 'replica-a' });
    expect(handedOver.map((b) => b.map((t) => t.row.id))).toEqual([[row.id]]);
    expect(adopted).toContain(row.id);
  });

  it('given its source host at its outbound limit, then it is stored queued, with nothing handed over', async () => {
    view.active = [{ clusterId: cluster, sourceHostId: 'host-a', targetHostId: 'host-c' }];
    const { row, requested } = request('host-a');
    const admitted = await admission.admit(row, {}, requested);
    expect(names()).toEqual(['scheduler_try_dispatch_lock', 'scheduler_queue_view', 'scheduler_insert_migration']);
    expect(insertOf()[5]).toBe('queued');
    expect(admitted.state).toBe('queued');
    expect(handedOver).toEqual([]);
  });

  it('given the cluster’s own limits in the view, then they decide, not the defaults', async () => {
    view.active = [{ clusterId: cluster, sourceHostId: 'host-a', targetHostId: 'host-c' }];
    view.settings = [{ clusterId: cluster, limits: { maxOutboundPerHost: 2 }, policy: {} }];
    const { row, requested } = request('host-a');
    expect((await admission.admit(row, {}, requested)).state).toBe('running');
  });

  it('given the cluster’s policy in the view, then the stored policy is the cluster’s under the request’s fields', async () => {
    view.settings = [{ clusterId: cluster, limits: {}, policy: { downtimeLimitMs: 400, bandwidthMiBps: 100 } }];
    const { row, requested } = request();
    await admission.admit(row, { downtimeLimitMs: 250 }, requested);
    expect(JSON.parse(insertOf()[8] as string)).toMatchObject({ downtimeLimitMs: 250, bandwidthMiBps: 100 });
  });

  it('given an older queued migration that now fits, then it starts first, read back from the queue, and the newcomer after it', async () => {
    const older = queuedOne('host-q');
    view.queued = [older];
    const { row, requested } = request();
    await admission.admit(row, {}, requested);
    expect(names()).toEqual([
      'scheduler_try_dispatch_lock',
      'scheduler_queue_view',
      'scheduler_insert_migration',
      'scheduler_starting',
      'scheduler_start_queued',
      'scheduler_with_events_waiting',
    ]);
    expect(handedOver.map((b) => b.map((t) => t.row.id))).toEqual([[older.id, row.id]]);
  });

  it('given an older queued migration on the same source, then the older one takes the slot and the newcomer waits', async () => {
    const older = queuedOne('host-a');
    view.queued = [older];
    const { row, requested } = request('host-a');
    const admitted = await admission.admit(row, {}, requested);
    expect(admitted.state).toBe('queued');
    expect(handedOver.map((b) => b.map((t) => t.row.id))).toEqual([[older.id]]);
  });

  it('given a full window of queued migrations, then the newcomer waits its turn behind them, even with its own hosts free', async () => {
    view.queued = Array.from({ length: 1000 }, (_, i) => ({ id: randomUUID(), clusterId: cluster, sourceHostId: `busy-${i}`, targetHostId: 'host-z' }));
    view.active = view.queued.map((q) => ({ ...q, targetHostId: 'elsewhere' }));
    const { row, requested } = request('host-free', 'host-free-too');
    expect((await admission.admit(row, {}, requested)).state).toBe('queued');
  });

  describe('a freed slot dispatches only while something may wait (a migration’s end costs no transaction otherwise)', () => {
    const dispatchesOnSlotFreed = async () => {
      sent = [];
      admission.slotFreed();
      // the pass, if any, against a connection that answers at once
      for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
      return names().length > 0;
    };

    it('given a request started with nothing left in the queue, then a freed slot sends nothing', async () => {
      const { row, requested } = request();
      await admission.admit(row, {}, requested);
      expect(await dispatchesOnSlotFreed()).toBe(false);
    });

    it('given a request that had to wait, then a freed slot looks at the queue again', async () => {
      view.active = [{ clusterId: cluster, sourceHostId: 'host-a', targetHostId: 'host-c' }];
      const { row, requested } = request('host-a');
      await admission.admit(row, {}, requested);
      expect(await dispatchesOnSlotFreed()).toBe(true);
    });

    it('given a newcomer behind a full window whose every member starts, then it still counts as waiting', async () => {
      view.queued = Array.from({ length: 1000 }, (_, i) => queuedOne(`host-${i}`, `target-${i}`));
      view.settings = [{ clusterId: cluster, limits: { maxPerCluster: 0 }, policy: {} }];
      const { row, requested } = request('host-free', 'host-free-too');
      expect((await admission.admit(row, {}, requested)).state).toBe('queued');
      view.queued = [];
      expect(await dispatchesOnSlotFreed()).toBe(true);
    });
  });

  it('given another replica holding the dispatch lock, then the migration is stored queued with the policy read on its own', async () => {
    lockFree = false;
    const { row, requested } = request();
    const admitted = await admission.admit(row, {}, requested);
    expect(names()).toEqual(['scheduler_try_dispatch_lock', 'scheduler_settings_of_clusters', 'scheduler_insert_migration']);
    expect(admitted.state).toBe('queued');
    expect(handedOver).toEqual([]);
  });
});
