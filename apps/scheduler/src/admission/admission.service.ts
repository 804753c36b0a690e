import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { ClusterSettings, MigrationPolicy } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { Coalesced } from '@flexmig/timing';
import { MigrationEntity } from '../entities';
import { ClusterSettingsService, policyOf, STORED_SETTINGS, StoredClusterSettings } from '../settings/cluster-settings.service';
import { DRIVEN, MigrationStore, NewMigration, Transition } from '../store/migration-store';
import { OutboxRelay } from '../store/outbox-relay';
import { DirectPublisher } from '../store/direct-publisher';
import type { OutboxRow } from '../store/outbox-rows';
import { QueuedMigration, selectAdmissible, SlotHolder } from './admission';

/** One PostgreSQL advisory lock serialises admission across replicas, so limits hold cluster-wide. */
const DISPATCH_LOCK = 0x666c786d; // "flxm"
const TRY_DISPATCH_LOCK = prepared('scheduler_try_dispatch_lock', 'SELECT pg_try_advisory_xact_lock($1) AS locked');
/**
 * What a dispatch pass decides on, read in one statement under the dispatch lock: the queue's first $1
 * migrations oldest first, the migrations being driven (what the limits count), and the stored settings of
 * the queued ones' clusters and of cluster $2 (a new migration's, or null). Of each migration only the
 * slots it holds or would hold: the rows are read only for the ones a pass starts (STARTING), since an
 * evacuation of 10 hosts queues about 100 migrations and a pass runs each time one ends. The migrations being
 * driven are read only when something may start: a new migration ($2), or a queue that is not empty
 * (PostgreSQL runs a CASE branch's subquery only when the branch is taken); a pass over an empty queue, as
 * the reconcile tick's, reads no more than the queue.
 */
export const QUEUE_VIEW = prepared(
  'scheduler_queue_view',
  `WITH q AS (SELECT id, cluster_id, source_host_id, target_host_id, created_at FROM migrations WHERE state = 'queued' ORDER BY created_at LIMIT $1)
   SELECT
     (SELECT coalesce(json_agg(json_build_object('id', id, 'clusterId', cluster_id, 'sourceHostId', source_host_id, 'targetHostId', target_host_id)
        ORDER BY created_at, id), '[]') FROM q) AS queued,
     CASE WHEN $2::uuid IS NOT NULL OR EXISTS (SELECT 1 FROM q) THEN
       (SELECT coalesce(json_agg(json_build_object('clusterId', cluster_id, 'sourceHostId', source_host_id, 'targetHostId', target_host_id)), '[]')
          FROM migrations WHERE ${DRIVEN})
     ELSE '[]' END AS active,
     (SELECT coalesce(json_agg(s), '[]') FROM (${STORED_SETTINGS} WHERE cluster_id IN (SELECT cluster_id FROM q) OR cluster_id = $2::uuid) s) AS settings`,
);
interface QueueView {
  queued: QueuedMigration[];
  active: SlotHolder[];
  settings: StoredClusterSettings[];
}
/** A replica that finds another one dispatching tries again this soon. */
const dispatchRetryMs = 25;
/** Queued migrations looked at per pass. */
const queueWindow = 1000;

/**
 * Admission: a new migration waits in the queue (`queued`) until the limits (outbound and inbound per
 * host, per cluster) allow it, then starts, leased to this replica. Started migrations are handed to the
 * listeners (the engine runs their first action).
 *
 * A queued migration starts as soon as a slot frees: the replica whose migration ended dispatches at once
 * (`slotFreed`), and so do the other replicas, woken by PostgreSQL's notification of that end
 * (SlotListener); the reconcile tick dispatches too, as the fallback. A replica dispatches on a freed slot
 * only while its last look at the queue left something in it, so that a migration's end costs no
 * transaction when nothing waits.
 */
@Injectable()
export class Admission implements OnApplicationShutdown {
  private readonly log = new Logger('admission');
  private readonly listeners: ((started: Transition[]) => void)[] = [];
  private readonly slotListeners: (() => void)[] = [];
  private readonly dispatching = new Coalesced(
    () => this.dispatchOnce(),
    (e) => this.log.warn(`dispatch failed (the next tick retries): ${(e as Error).message}`),
  );
  private retry?: NodeJS.Timeout;
  /** False once a look at the queue found it empty, until this replica queues something (or the tick looks). */
  private queueMayWait = true;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly store: MigrationStore,
    private readonly settings: ClusterSettingsService,
    private readonly relay: OutboxRelay,
    private readonly direct: DirectPublisher,
  ) {}

  onApplicationShutdown(): void {
    this.dispatching.stop();
    clearTimeout(this.retry);
  }

  /** `fn` gets every batch of migrations this replica started, after their commit. */
  onStarted(fn: (started: Transition[]) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Queues a new migration with its `migration.requested` event and starts it if the limits allow, all in
   * one transaction (with the policy: the cluster's settings under the request's fields). Returns it as
   * started (and driven here), or still queued.
   *
   * Five round trips to PostgreSQL: BEGIN, the dispatch lock, one read of what the limits decide on (with
   * the cluster's settings), the migration stored queued or already started with its events, COMMIT.
   */
  async admit(row: Omit<NewMigration, 'policy'>, requestedPolicy: Partial<MigrationPolicy>, requested: OutboxRow): Promise<MigrationEntity> {
    const newcomer: QueuedMigration = { id: row.id, clusterId: row.clusterId, sourceHostId: row.sourceHostId, targetHostId: row.targetHostId };
    const { saved, started, leftWaiting } = await this.direct.deletingAcknowledged((sent) =>
      this.db.transaction(async (m) => {
        if (!(await this.locked(m))) {
          // another replica is dispatching: the migration waits in the queue, and this replica retries soon
          const policy = await this.settings.policyFor(row.clusterId, requestedPolicy, m);
          return { saved: (await this.store.insert(m, { ...row, policy }, requested, sent, false)).saved, started: null, leftWaiting: true };
        }
        const { admissible, leftWaiting, settingsOf } = await this.admissibleNow(m, newcomer);
        const policy = policyOf(settingsOf(row.clusterId), requestedPolicy);
        const mine = await this.store.insert(m, { ...row, policy }, requested, sent, admissible.has(row.id));
        const older = await this.startQueued(m, [...admissible].filter((id) => id !== row.id));
        return { saved: mine.saved, started: mine.started ? [...older, mine.started] : older, leftWaiting };
      }),
    );
    // its events go out at once, in order: `requested` first, then those of its steps
    const startedHere = started?.some((t) => t.row.id === saved.id) ?? false;
    if (startedHere) this.direct.adopt(saved.id);
    // as this transaction left the queue (a newcomer behind a full window waits without being looked at)
    this.queueMayWait = leftWaiting || !startedHere;
    this.direct.publish({ migrationId: saved.id, rows: [requested], at: saved.createdAt, traceParent: saved.traceParent, last: !startedHere });
    if (started === null) this.retrySoon();
    else this.handOver(started);
    // started here: the row as its start left it, with the placement the store does not keep (DrivenMigration)
    const current = this.store.current(saved.id);
    return current ? { ...current, placement: saved.placement, measured: null } : saved;
  }

  /**
   * `fn` is told each time a migration ends: one of this replica's, or another replica's as far as its
   * notification arrived (lossy, like the dispatch it wakes: the reconcile tick is the fallback).
   */
  onSlotFreed(fn: () => void): void {
    this.slotListeners.push(fn);
  }

  /** A migration of this replica ended and freed its slots (or another replica's did: SlotListener). */
  slotFreed(): void {
    if (this.queueMayWait) void this.dispatch();
    for (const fn of this.slotListeners) fn();
  }

  /**
   * Starts queued migrations, oldest first, as far as the limits allow. Calls coalesce into one loop per
   * replica (so a burst of requests costs one pass, and one pool connection, not one each); the resolved
   * promise means a pass that began after the call has finished.
   */
  dispatch(): Promise<void> {
    return this.dispatching.request();
  }

  /**
   * One pass, under an advisory lock so that two replicas never admit past a limit together. A replica
   * that finds the lock taken does not wait for it (holding a connection while waiting is what starves a
   * pool); it tries again a moment later.
   */
  private async dispatchOnce(): Promise<void> {
    const pass = await this.db.transaction(async (m) => {
      if (!(await this.locked(m))) return null;
      const { admissible, leftWaiting } = await this.admissibleNow(m);
      return { started: await this.startQueued(m, admissible), leftWaiting };
    });
    if (pass === null) return this.retrySoon();
    this.queueMayWait = pass.leftWaiting;
    this.handOver(pass.started);
  }

  /** Takes the dispatch lock for the caller's transaction, if no other replica holds it (then false). */
  private async locked(m: EntityManager): Promise<boolean> {
    const [{ locked }] = await runPrepared<{ locked: boolean }>(m, TRY_DISPATCH_LOCK, [DISPATCH_LOCK]);
    return locked;
  }

  /**
   * In the caller's transaction, which holds the dispatch lock: the queued migrations that may start now,
   * oldest first, with `newcomer` (one this transaction is about to store) last in the queue; whether any
   * is left waiting (the caller keeps that once its transaction commits); and the settings read with them
   * (those of the queued migrations' clusters and of the newcomer's).
   */
  private async admissibleNow(
    m: EntityManager,
    newcomer?: QueuedMigration,
  ): Promise<{ admissible: Set<string>; leftWaiting: boolean; settingsOf: (clusterId: string) => ClusterSettings }> {
    const [view] = await runPrepared<QueueView>(m, QUEUE_VIEW, [queueWindow, newcomer?.clusterId ?? null]);
    // a newcomer behind a full window waits for its turn, as it would in a read of the window after its insert
    const queued = newcomer && view.queued.length < queueWindow ? [...view.queued, newcomer] : view.queued;
    const settingsOf = this.settings.fromRows(view.settings);
    const admissible = new Set(selectAdmissible(queued, view.active, (id) => settingsOf(id).limits));
    return { admissible, leftWaiting: admissible.size < queued.length, settingsOf };
  }

  /**
   * Starts these queued migrations (already stored, oldest first) in the caller's transaction, under its
   * dispatch lock. A migration whose earlier events all went out publishes the next ones at once; the
   * others through the relay.
   */
  private async startQueued(m: EntityManager, ids: Iterable<string>): Promise<Transition[]> {
    const started = await this.store.startQueued(m, [...ids]);
    const waiting = await this.store.withEventsWaiting(
      m,
      started.map((t) => t.row.id),
    );
    for (const t of started) if (!waiting.has(t.row.id)) this.direct.adopt(t.row.id);
    return started;
  }

  private retrySoon(): void {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.dispatch(), dispatchRetryMs);
  }

  /** After the commit: the cache follows, the engine runs the started migrations' first actions. */
  private handOver(started: Transition[]): void {
    if (started.length === 0) return;
    this.store.started(started);
    for (const fn of this.listeners) fn(started);
  }

  /** A migration still in the queue has nothing to undo: it ends `cancelled` at once. null: it is not queued. */
  async cancelQueued(id: string, reason: string, by: string): Promise<Transition | null> {
    const done = await this.db.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [DISPATCH_LOCK]);
      return this.store.cancelQueued(m, id, reason, by);
    });
    if (done) this.relay.flushSoon();
    return done;
  }
}
