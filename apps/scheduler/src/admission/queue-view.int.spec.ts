import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createSaga } from '@flexmig/saga';
import { ensureDatabaseAndSchema, initializeServiceDataSource, runPrepared, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import { schedulerEntities } from '../entities';
import { LeaseFence } from '../engine/lease-fence';
import { schedulerMigrations } from '../migrations';
import { ClusterSettingsService } from '../settings/cluster-settings.service';
import type { DirectPublisher } from '../store/direct-publisher';
import { MigrationStore, type NewMigration } from '../store/migration-store';
import type { OutboxRelay } from '../store/outbox-relay';
import { Admission, QUEUE_VIEW } from './admission.service';

/**
 * What a dispatch pass reads under the dispatch lock (QUEUE_VIEW), on real PostgreSQL: the migrations holding
 * slots only when something may start, a new migration or a queue that is not empty. A pass over an empty
 * queue (the reconcile tick's, a freed slot's) reads the queue and nothing more.
 */
describe('the queue view on real PostgreSQL: slot holders read only when something may start', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  let admission: Admission;
  const cluster = randomUUID();
  const config = { schedulerId: 'replica-a', leaseTtlMs: 30_000, limits: { maxOutboundPerHost: 1, maxInboundPerHost: 0, maxPerCluster: 0 } } as SchedulerConfig;
  const direct = {
    deletingAcknowledged: <T>(statement: (ids: string[]) => Promise<T>) => statement([]),
    adopt: () => undefined,
    publish: () => undefined,
  } as unknown as DirectPublisher;

  beforeAll(async () => {
    db = await startTestDatabase('queue-view');
    await ensureDatabaseAndSchema(db.url, 'scheduler');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'scheduler', entities: schedulerEntities, migrations: schedulerMigrations, poolSize: 2 }));
    const clock = { now: () => Date.now() } as unknown as DbClock;
    const store = new MigrationStore(ds, config, clock, new LeaseFence(30_000, () => Date.now()), direct);
    admission = new Admission(ds, store, new ClusterSettingsService(ds, config), {} as OutboxRelay, direct);
  });

  afterAll(async () => {
    admission?.onApplicationShutdown();
    await ds?.destroy();
    await db?.stop();
  });

  const admit = (sourceHostId: string) => {
    const id = randomUUID();
    const ref = { migrationId: id, vmId: randomUUID(), sourceHostId, targetHostId: 'host-z' };
    const row = {
      ...ref,
      id,
      clusterId: cluster,
      saga: createSaga(ref, Date.now()),
      vm: { id: ref.vmId, name: 'vm', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' },
      targetAddress: 'tcp:127.0.0.1:4444',
      requestedBy: 'alice',
      placement: null,
      traceParent: null,
      createdAt: new Date(),
    } as unknown as Omit<NewMigration, 'policy'>;
    return admission.admit(row, {}, { event_id: `${id}:requested`, type: 'migration.requested', subject: id, data: { migrationId: id } });
  };
  const view = (newcomerCluster: string | null) =>
    ds.transaction(async (m) => (await runPrepared<{ queued: unknown[]; active: unknown[] }>(m, QUEUE_VIEW, [1000, newcomerCluster]))[0]);

  it('given a migration holding slots and an empty queue, then a pass reads no slot holders; a new migration does', async () => {
    expect((await admit('host-a')).state).toBe('running');
    const holder = { clusterId: cluster, sourceHostId: 'host-a', targetHostId: 'host-z' };

    expect(await view(null)).toMatchObject({ queued: [], active: [] });
    expect(await view(cluster)).toMatchObject({ queued: [], active: [holder] });
  });

  it('given a queued migration, then a pass reads the slot holders it must fit beside', async () => {
    const queued = await admit('host-a'); // host-a's one outbound slot is taken
    expect(queued.state).toBe('queued');

    const { queued: q, active } = await view(null);
    expect(q).toEqual([expect.objectContaining({ id: queued.id, sourceHostId: 'host-a' })]);
    expect(active).toEqual([{ clusterId: cluster, sourceHostId: 'host-a', targetHostId: 'host-z' }]);
  });
});
