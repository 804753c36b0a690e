import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createSaga, step, type JsonValue, type SagaEvent, type SagaState, type StepNumber } from '@flexmig/saga';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import { MigrationEntity, schedulerEntities } from '../entities';
import { LeaseFence } from '../engine/lease-fence';
import { schedulerMigrations } from '../migrations';
import { measuredByMigration } from '../prediction/measured';
import type { DirectPublisher } from './direct-publisher';
import { MigrationStore } from './migration-store';

const MiB = 2 ** 20;

/**
 * A completing transition stores what the migration measured of its two hosts (`measured`), whichever way
 * the store writes it: the fast path's one guarded statement (a migration this replica drives from its
 * cache) or the locked read-modify-write (a migration it claimed from another replica, or after a restart,
 * which it has not cached). Predictions read that column (prediction/measured.ts). Real PostgreSQL.
 */
describe('MigrationStore on real PostgreSQL: what a completion measured, on either path', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  const replica = 'replica-a';
  const config = { schedulerId: replica, leaseTtlMs: 30_000 } as SchedulerConfig;
  const clock = { now: () => Date.now() } as unknown as DbClock;
  // the fast path deletes the rows of events already published in its statement: none here
  const direct = { deletingAcknowledged: <T>(fn: (sent: string[]) => Promise<T>) => fn([]) } as unknown as DirectPublisher;
  const storeOf = () => new MigrationStore(ds, config, clock, new LeaseFence(30_000, () => Date.now()), direct);

  beforeAll(async () => {
    db = await startTestDatabase('migration-store');
    await ensureDatabaseAndSchema(db.url, 'scheduler');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'scheduler', entities: schedulerEntities, migrations: schedulerMigrations, poolSize: 2 }));
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  /** The results a qemu migration's steps report, as far as `measuredByMigration` reads them. */
  const resultOf = (n: number, t0: number): JsonValue | undefined =>
    ({
      3: { stats: { bytesTransferred: 600 * MiB, bandwidthBytesPerSec: 300 * MiB } },
      4: { stats: { remainingBytes: 3 * MiB } },
      5: { pausedAt: new Date(t0 + 4_000).toISOString() },
      7: { resumedAt: new Date(t0 + 4_045).toISOString() },
    })[n];
  const succeeded = (s: SagaState, n: number, t0: number): SagaEvent => {
    const result = resultOf(n, t0);
    return { type: 'step-succeeded', step: n as StepNumber, attempt: s.steps[n - 1].attempt, ...(result !== undefined ? { result } : {}) };
  };

  /** A migration leased to this replica, stored with the steps before `n` done and step `n` running; the event that completes step `n`. */
  async function atStep(n: 8 | 9): Promise<{ id: string; done: SagaEvent }> {
    const id = randomUUID();
    const t0 = Date.now() - 10_000;
    const ref = { migrationId: id, vmId: randomUUID(), sourceHostId: 'host-a', targetHostId: 'host-b' };
    let saga = step(createSaga(ref, t0), { type: 'start' }, t0).state;
    for (let k = 1; k < n; k++) saga = step(saga, succeeded(saga, k, t0), t0 + k * 500).state;
    expect(saga.steps[n - 1].status).toBe('running');
    const row: MigrationEntity = {
      id,
      vmId: ref.vmId,
      clusterId: randomUUID(),
      sourceHostId: ref.sourceHostId,
      targetHostId: ref.targetHostId,
      state: saga.phase,
      saga,
      vm: { memoryMiB: 2048, vcpus: 1 } as MigrationEntity['vm'],
      policy: {} as MigrationEntity['policy'],
      targetAddress: 'sim://host-b',
      requestedBy: 'test',
      placement: null,
      version: n,
      leaseOwner: replica,
      leaseUntil: new Date(Date.now() + 30_000),
      dueAt: null,
      traceParent: null,
      prediction: null,
      predictionError: null,
      createdAt: new Date(t0),
      updatedAt: new Date(t0 + 4_000),
      finishedAt: null,
      measured: null,
    };
    await ds.getRepository(MigrationEntity).insert(row as never); // (TypeORM's deep partial of a saga is too deep for tsc)
    return { id, done: succeeded(saga, n, t0) };
  }

  const stored = async (id: string) => (await ds.query('SELECT state, saga, vm, policy, measured, lease_owner FROM migrations WHERE id = $1', [id]))[0];
  const asMeasured = (row: { saga: SagaState; vm: { memoryMiB: number }; policy: { bandwidthMiBps?: number } }) =>
    JSON.parse(JSON.stringify(measuredByMigration(row.saga, row.vm.memoryMiB, row.policy.bandwidthMiBps)));

  it('given a migration the replica has not cached (claimed, or after a restart), then its completion on the locked path stores what it measured', async () => {
    const { id, done } = await atStep(9);
    const store = storeOf();
    const transaction = jest.spyOn(ds, 'transaction');
    try {
      expect((await store.apply(id, done))?.row.state).toBe('completed');
      expect(transaction).toHaveBeenCalledTimes(1); // the locked read-modify-write
    } finally {
      transaction.mockRestore();
    }
    const row = await stored(id);
    expect(row.state).toBe('completed');
    expect(row.lease_owner).toBeNull();
    expect(row.measured).toEqual(asMeasured(row));
    expect(row.measured.bytesPerSec).toBe(300 * MiB);
  });

  it('given a migration the replica drives from its cache, then its completion on the fast path stores the same figures; the transition before it leaves the column alone', async () => {
    const { id, done } = await atStep(8);
    const store = storeOf();
    // step 8's reply on the locked path (not cached yet); the row is cached from then on
    const eight = await store.apply(id, done);
    expect(eight?.row.saga.steps[8].status).toBe('running');
    expect((await stored(id)).measured).toBeNull();
    const nine = succeeded(eight!.row.saga, 9, 0); // step 9 reports nothing measurable
    const transaction = jest.spyOn(ds, 'transaction');
    try {
      expect((await store.apply(id, nine))?.row.state).toBe('completed');
      expect(transaction).not.toHaveBeenCalled(); // the one guarded statement
    } finally {
      transaction.mockRestore();
    }
    const row = await stored(id);
    expect(row.state).toBe('completed');
    expect(row.measured).toEqual(asMeasured(row));
    expect(row.measured.bytesPerSec).toBe(300 * MiB);
  });
});
