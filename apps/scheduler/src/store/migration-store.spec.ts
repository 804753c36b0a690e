import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import { createSaga } from '@flexmig/saga';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import { LeaseFence, LeaseNotHeld } from '../engine/lease-fence';
import type { DirectPublisher } from './direct-publisher';
import { type DrivenMigration, MigrationStore, type NewMigration } from './migration-store';

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
  const sent: { name?: string; values: unknown[] }[] = [];
  const connection = {
    query: async (q: { name?: string; values: unknown[] }) => {
      sent.push(q);
      if (q.name !== 'scheduler_starting') return { rows: [] };
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

  const requested = (id: string) => ({ event_id: `${id}:requested`, type: 'migration.requested', subject: id, data: { migrationId: id } });
  const newRow = (): NewMigration => {
    const row = queued();
    rows.delete(row.id);
    const { state: _s, version: _v, ...rest } = row;
    return { ...rest, vm: {}, policy: {}, targetAddress: null, placement: null } as unknown as NewMigration;
  };
  const eventsOf = (statement: { values: unknown[] }) => (JSON.parse(statement.values[21] as string) as { type: string }[]).map((e) => e.type);

  it('stores a migration admission starts at once in one statement: started, leased here, `requested` before the events of its start', async () => {
    sent.length = 0;
    const row = { ...newRow(), placement: { chosen: 'b', reason: 'least loaded' } } as unknown as NewMigration;
    const { saved, started } = await store.insert(m, row, requested(row.id), ['older:event'], true);
    expect(sent.map((q) => q.name)).toEqual(['scheduler_insert_migration']);
    const values = sent[0]!.values;
    expect(values[5]).toBe('running');
    expect(values[12]).toBe(2);
    expect(values[18]).toBe('replica-a');
    expect(values[19]).toEqual(started!.row.leaseUntil);
    expect((values[19] as Date).getTime() - (values[17] as Date).getTime()).toBe(10_000);
    expect(values[22]).toEqual(['older:event']);
    expect(eventsOf(sent[0]!)).toEqual(['migration.requested', ...started!.events.map((e) => e.type)]);
    expect(started!.row).toMatchObject({ id: row.id, state: 'running', version: 2, leaseOwner: 'replica-a' });
    expect(started!.actions.length).toBeGreaterThan(0);
    // the placement is stored, and not kept in the cache of driven migrations (125 KB at 1,000 hosts)
    expect(JSON.parse(values[11] as string)).toEqual({ chosen: 'b', reason: 'least loaded' });
    expect(started!.row).not.toHaveProperty('placement');
    // the request as it came in, for the API's answer
    expect(saved).toMatchObject({ id: row.id, state: 'queued', version: 1 });
    // the fence learns of the lease after the commit, as for a queued migration started later
    expect(() => fence.check(row.id)).toThrow(LeaseNotHeld);
    store.started([started!]);
    expect(() => fence.check(row.id)).not.toThrow();
  });

  it('stores a migration that must wait queued: no lease, no saga step, only its `requested` event', async () => {
    sent.length = 0;
    const row = newRow();
    const { saved, started } = await store.insert(m, row, requested(row.id), [], false);
    expect(started).toBeUndefined();
    const values = sent[0]!.values;
    expect([values[5], values[12], values[18], values[19], values[20]]).toEqual(['queued', 1, null, null, null]);
    expect(eventsOf(sent[0]!)).toEqual(['migration.requested']);
    expect(saved.state).toBe('queued');
  });

  it('starts queued migrations read back in one statement, then each in one (a start has no event of its own to store)', async () => {
    sent.length = 0;
    const [a, b] = [queued(), queued()];
    const started = await store.startQueued(m, [a.id, b.id]);
    expect(started.map((t) => [t.row.id, t.row.state, t.row.version])).toEqual([
      [a.id, 'running', 2],
      [b.id, 'running', 2],
    ]);
    expect(sent.map((q) => q.name)).toEqual([
      'scheduler_starting',
      'scheduler_start_queued',
      'scheduler_start_queued',
    ]);
    sent.length = 0;
    expect(await store.startQueued(m, [])).toEqual([]);
    expect(sent).toEqual([]);
  });
});
