import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { MigrationPolicy } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { Coalesced } from '@flexmig/timing';
import { MigrationEntity } from '../entities';
import { ClusterSettingsService } from '../settings/cluster-settings.service';
import { DRIVEN, DrivenMigration, MigrationStore, NewMigration, Transition } from '../store/migration-store';
import { OutboxRelay } from '../store/outbox-relay';
import { DirectPublisher } from '../store/direct-publisher';
import type { OutboxRow } from '../store/outbox-rows';
import { selectAdmissible } from './admission';

/** One PostgreSQL advisory lock serialises admission across replicas, so limits hold cluster-wide. */
const DISPATCH_LOCK = 0x666c786d; // "flxm"
const TRY_DISPATCH_LOCK = prepared('scheduler_try_dispatch_lock', 'SELECT pg_try_advisory_xact_lock($1) AS locked');
/** The migrations being driven, by cluster and hosts: what the limits count. */
const ACTIVE_PAIRS = prepared('scheduler_active_pairs', `SELECT cluster_id, source_host_id, target_host_id FROM migrations WHERE ${DRIVEN}`);
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
   */
  async admit(row: Omit<NewMigration, 'policy'>, requestedPolicy: Partial<MigrationPolicy>, requested: OutboxRow): Promise<MigrationEntity> {
    const { saved, started } = await this.direct.deletingAcknowledged((sent) =>
      this.db.transaction(async (m) => {
        const policy = await this.settings.policyFor(row.clusterId, requestedPolicy, m);
        const saved = await this.store.insertQueued(m, { ...row, policy }, requested, sent);
        const { placement: _placement, ...driven } = saved;
        return { saved, started: await this.startAdmissible(m, driven) };
      }),
    );
    // its events go out at once, in order: `requested` first, then those of its steps
    const startedHere = started?.some((t) => t.row.id === saved.id) ?? false;
    if (startedHere) this.direct.adopt(saved.id);
    else this.queueMayWait = true;
    this.direct.publish({ migrationId: saved.id, rows: [requested], at: saved.createdAt, traceParent: saved.traceParent, last: !startedHere });
    if (started === null) this.retrySoon();
    else this.handOver(started);
    // started here: the row as its start left it, with the placement the store does not keep (DrivenMigration)
    const current = this.store.current(saved.id);
    return current ? { ...current, placement: saved.placement } : saved;
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
    const started = await this.db.transaction((m) => this.startAdmissible(m));
    if (started === null) this.retrySoon();
    else this.handOver(started);
  }

  /**
   * In the caller's transaction: starts what the limits allow, under the dispatch lock. null: another
   * replica holds the lock (it is dispatching; the caller tries again soon). `inserted`: the migration this
   * transaction queued (admit), started from memory if admitted.
   */
  private async startAdmissible(m: EntityManager, inserted?: DrivenMigration): Promise<Transition[] | null> {
    const [{ locked }] = await runPrepared<{ locked: boolean }>(m, TRY_DISPATCH_LOCK, [DISPATCH_LOCK]);
    if (!locked) return null;
    const queued = await this.store.queued(m, queueWindow);
    if (queued.length === 0) {
      this.queueMayWait = false;
      return [];
    }
    const active = await runPrepared<{ cluster_id: string; source_host_id: string; target_host_id: string }>(
      m,
      ACTIVE_PAIRS,
      [],
    );
    const limitsOf = await this.settings.limitsFor([...new Set(queued.map((q) => q.clusterId))], m);
    const ids = new Set(
      selectAdmissible(
        queued,
        active.map((a) => ({ clusterId: a.cluster_id, sourceHostId: a.source_host_id, targetHostId: a.target_host_id })),
        limitsOf,
      ),
    );
    this.queueMayWait = ids.size < queued.length;
    const starting = queued.filter((q) => ids.has(q.id));
    const started = await this.store.startQueued(
      m,
      starting.map((q) => q.id),
      inserted,
    );
    // a migration whose earlier events all went out publishes the next ones at once; the others through the relay
    const waiting = await this.store.withEventsWaiting(
      m,
      starting.map((q) => q.id),
    );
    for (const q of starting) if (!waiting.has(q.id)) this.direct.adopt(q.id);
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
