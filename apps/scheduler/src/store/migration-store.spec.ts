import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { createSaga } from '@flexmig/saga';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import { LeaseFence, LeaseNotHeld } from '../engine/lease-fence';
import type { DirectPublisher } from './direct-publisher';
import { type DrivenMigration, MigrationStore } from './migration-store';

/**
 * A migration that admission starts is leased in admission's transaction; the LeaseFence must learn of the
 * lease only once that commits. A renewal sent meanwhile cannot see the uncommitted lease: had the fence
 * been told before the commit, the renewal would take the lease for lost, and every action of the
 * migration would be refused ("never granted here") until the next tick's renewal (bench/control-plane
 * showed such a stall under load).
 */
describe('MigrationStore: the fence learns of a started migration after its commit', () => {
  let now = 1_000;
  const fence = new LeaseFence(10_000, () => now);
  const config = { schedulerId: 'replica-a', leaseTtlMs: 10_000 } as SchedulerConfig;
  const clock = { now: () => Date.now() } as unknown as DbClock;
  const store = new MigrationStore({} as DataSource, config, clock, fence, {} as DirectPublisher);
  // admission's transaction, as far as startQueued writes in it: its connection runs the (prepared) statements
  // the queued rows as PostgreSQL holds them: startQueued reads those it starts (scheduler_starting)
  const rows = new Map<string, DrivenMigration>();
  const reads: string[][] = [];
  const connection = {
    query: async (q: { name?: string; values: unknown[] }) => {
      if (q.name !== 'scheduler_starting') return { rows: [] };
      reads.push(q.values[0] as string[]);
      return { rows: (q.values[0] as string[]).map((id) => rows.get(id)) };
    },
  };
  const m = { queryRunner: { connect: async () => connection } } as unknown as EntityManager;

  const queued = (): DrivenMigration => {
    const ref = { migrationId: randomUUID(), vmId: randomUUID(), sourceHostId: 'a', targetHostId: 'b' };
    const row = { id: ref.migrationId, saga: createSaga(ref, Date.now()), state: 'queued', version: 1, createdAt: new Date() } as unknown as DrivenMigration;
    rows.set(row.id, row);
    return row;
  };

  it('given a renewal sent while the admission transaction is open, then the started migration is still known to be held after the commit', async () => {
    const row = queued();
    const started = await store.startQueued(m, [row.id]);
    expect(started).toHaveLength(1);
    // not committed yet: nothing may be sent for it
    expect(() => fence.check(row.id)).toThrow(LeaseNotHeld);
    // the tick's renewal, sent before the commit, renewed only what it could see: not this one
    now += 5;
    fence.renewed([], fence.mark());
    // the commit, then admission hands the migration over
    now += 5;
    store.started(started);
    expect(() => fence.check(row.id)).not.toThrow();
    // stamped with the time its statement was sent: held no longer than PostgreSQL holds it
    expect(fence.remainingMs(row.id)).toBe(started[0]!.leaseSentAt! + 10_000 - fence.marginMs - now);
  });

  it('given a renewal after the commit that did not renew it, then the lease is lost as before', async () => {
    const row = queued();
    store.started(await store.startQueued(m, [row.id]));
    now += 5;
    fence.renewed([], fence.mark());
    expect(() => fence.check(row.id)).toThrow(LeaseNotHeld);
  });

  it('starts a migration its own transaction inserted from memory, and reads back only the others, oldest first', async () => {
    reads.length = 0;
    const older = queued();
    const inserted = queued();
    rows.delete(inserted.id); // not readable: it must come from memory
    const started = await store.startQueued(m, [older.id, inserted.id], inserted);
    expect(reads).toEqual([[older.id]]);
    expect(started.map((t) => [t.row.id, t.row.state])).toEqual([
      [older.id, 'running'],
      [inserted.id, 'running'],
    ]);
    reads.length = 0;
    await store.startQueued(m, [inserted.id], inserted);
    expect(reads).toEqual([]);
  });
});
