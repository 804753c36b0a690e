import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { TERMINAL_MIGRATION_STATES } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { isTerminal, step as sagaStep } from '@flexmig/saga';
import type { SagaAction, SagaEvent, SagaState } from '@flexmig/saga';
import { MigrationEntity } from '../entities';
import { DbClock } from '../db-clock';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { dueAt } from '../engine/due-time';
import { LeaseFence } from '../engine/lease-fence';
import { OutboxRow, outboxRows } from './outbox-rows';
import { DirectPublisher } from './direct-publisher';
import { type MeasuredFigures, measuredByMigration } from '../prediction/measured';

const terminal = TERMINAL_MIGRATION_STATES.map((s) => `'${s}'`).join(', ');
/** States that hold an admission slot; `queued` waits for one. */
export const DRIVEN = `state NOT IN (${terminal}, 'queued')`;
/**
 * The PostgreSQL channel on which a transition that ends a migration (and so frees its admission slots)
 * notifies, in its own commit; the payload is the replica's id. Admission listens on it (SlotListener).
 */
export const SLOT_FREED_CHANNEL = 'flexmig_scheduler_slot_freed';

/** A committed transition: the migration as stored now, the actions its saga called for and its events (committed to the outbox). */
export interface Transition {
  row: DrivenMigration;
  actions: SagaAction[];
  events: OutboxRow[];
  /**
   * A start (`startQueued`): when the statement that leased it to this replica was sent (the LeaseFence's
   * clock). The fence learns of the lease from `started`, after the commit.
   */
  leaseSentAt?: number;
}

/** A new migration as admission hands it over (the store sets state, version, lease and times). */
export type NewMigration = Omit<MigrationEntity, 'version' | 'leaseOwner' | 'leaseUntil' | 'state' | 'updatedAt' | 'finishedAt' | 'dueAt' | 'measured'>;

/**
 * The outbox rows of events given as one JSON array (the parameter `events`), written by `writer` at `at`, in
 * the array's order (their `seq`, which is the order they are published in); an event already there stays
 * as it is. `from`: a relation joined in, whose rows gate the insert (a transition's guarded UPDATE).
 * Admission's insert, a queued migration's start and every transition write their events with it.
 */
const outboxInsert = (events: string, writer: string, { at = 'now()', from = '' }: { at?: string; from?: string } = {}): string =>
  `INSERT INTO outbox (event_id, type, subject, data, created_at, writer)
   SELECT e.event_id, e.type, e.subject, e.data, ${at}, ${writer}
   FROM ${from ? `${from}, ` : ''}ROWS FROM (jsonb_to_recordset(${events}::jsonb) AS (event_id text, type text, subject text, data jsonb)) WITH ORDINALITY AS e(event_id, type, subject, data, n)
   ORDER BY e.n
   ON CONFLICT (event_id) DO NOTHING`;

/** A transition's events into the outbox, as one JSON array ($1), written by replica $2. */
const EVENTS_INTO_OUTBOX = prepared('scheduler_events_into_outbox', outboxInsert('$1', '$2'));

const WITH_EVENTS_WAITING = prepared('scheduler_with_events_waiting', 'SELECT DISTINCT subject FROM outbox WHERE subject = ANY($1::text[])');

/**
 * A migration as this replica drives it: every column but `placement` and `measured`. Placement names each
 * host passed over with its reason, about 125 bytes a host (125 KB in a cluster of 1,000 hosts); only the
 * API's view reads it, from its own query. `measured` is written at the end, and read by predictions.
 */
export type DrivenMigration = Omit<MigrationEntity, 'placement' | 'measured'>;

/** The columns of a {@link DrivenMigration}, under MigrationEntity's property names (a row as TypeORM would read it). */
const DRIVEN_COLUMNS = `id, vm_id AS "vmId", cluster_id AS "clusterId", source_host_id AS "sourceHostId", target_host_id AS "targetHostId",
  state, saga, vm, policy, target_address AS "targetAddress", requested_by AS "requestedBy", version,
  lease_owner AS "leaseOwner", lease_until AS "leaseUntil", due_at AS "dueAt", trace_parent AS "traceParent", prediction,
  prediction_error AS "predictionError", created_at AS "createdAt", updated_at AS "updatedAt", finished_at AS "finishedAt"`;

/** One migration, locked for a read-modify-write (the safe path of a transition, a cancel in the queue). */
const LOCKED = prepared('scheduler_migration_locked', `SELECT ${DRIVEN_COLUMNS} FROM migrations WHERE id = $1 FOR UPDATE`);

/** The queued migrations admission starts ($1), oldest first. */
const STARTING = prepared('scheduler_starting', `SELECT ${DRIVEN_COLUMNS} FROM migrations WHERE id = ANY($1::uuid[]) AND state = 'queued' ORDER BY created_at`);

/** A queued migration started (its saga's first transition) and leased to replica $7 until $8. */
const START_QUEUED = prepared(
  'scheduler_start_queued',
  `UPDATE migrations SET saga = $2::json, state = $3, version = $4, updated_at = $5, due_at = $6, lease_owner = $7, lease_until = $8
   WHERE id = $1`,
);

/** The LeaseKeeper's renewal, every few seconds per replica: the leases this replica still holds. */
const RENEW_LEASES = prepared(
  'scheduler_renew_leases',
  `UPDATE migrations SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
   WHERE lease_owner = $1 AND lease_until > now() AND ${DRIVEN}
   RETURNING id`,
);

/** Up to $3 migrations whose lease lapsed, oldest first, leased to replica $1. */
const CLAIM_ORPHANS = prepared(
  'scheduler_claim_orphans',
  `UPDATE migrations SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::double precision / 1000)
   WHERE id IN (
     SELECT id FROM migrations
     WHERE ${DRIVEN} AND (lease_until IS NULL OR lease_until < now())
     ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
   RETURNING id`,
);

/** The due pass: this replica's migrations whose next action is due by PostgreSQL's clock, except $2. */
const DUE = prepared(
  'scheduler_due',
  `SELECT id FROM migrations
   WHERE lease_owner = $1 AND lease_until > now() AND due_at <= now() AND NOT (id = ANY($2::uuid[]))
   ORDER BY due_at LIMIT $3`,
);

/**
 * A new migration, queued or already started and leased to this replica ($19–$21), with its events into the
 * outbox as one JSON array ($22: `migration.requested`, then those of its start), in place of the rows of
 * events already published ($23; DirectPublisher): admission's one write, one statement.
 */
const INSERT_MIGRATION = prepared(
  'scheduler_insert_migration',
  `WITH d AS (DELETE FROM outbox WHERE event_id = ANY($23::text[])),
     i AS (
       INSERT INTO migrations (id, vm_id, cluster_id, source_host_id, target_host_id, state, saga, vm, policy, target_address,
         requested_by, placement, version, trace_parent, prediction, prediction_error, created_at, updated_at, lease_owner, lease_until, due_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::json, $8::jsonb, $9::jsonb, $10, $11, $12::jsonb, $13, $14, $15::jsonb, $16, $17, $18, $19, $20, $21))
   ${outboxInsert('$22', '$25', { at: 'to_timestamp($24::double precision / 1000)' })}`,
);

/**
 * A saga transition of a migration this replica drives, from its cached state: the row (guarded by version
 * and lease), its events into the outbox, the rows of events already published out of it, and at an end
 * the notification for admission. One statement per step of every migration: prepared (runPrepared).
 */
const TRANSITION = prepared(
  'scheduler_migration_transition',
  `WITH u AS (
       UPDATE migrations SET saga = $3::json, state = $4, version = version + 1, updated_at = to_timestamp($5::double precision / 1000),
         finished_at = CASE WHEN $6 THEN to_timestamp($5::double precision / 1000) END,
         due_at = to_timestamp($9::double precision / 1000),
         lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END, lease_until = CASE WHEN $6 THEN NULL ELSE lease_until END,
         measured = COALESCE($12::jsonb, measured)
       WHERE id = $1 AND version = $2 AND lease_owner = $7 RETURNING id),
     o AS (${outboxInsert('$8', '$7', { from: 'u' })}),
     d AS (DELETE FROM outbox WHERE event_id = ANY($10::text[])),
     n AS (SELECT pg_notify($11, $7) FROM u WHERE $6)
     SELECT (SELECT count(*) FROM u)::int AS updated, (SELECT count(*) FROM n)::int AS notified`,
);

const at = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));

/**
 * What a migration that completes with `saga` measured of its two hosts, as the `measured` column takes it
 * (JSON; `null` when it measured nothing); undefined for any other transition, which leaves the column alone.
 */
function measuredAtCompletion(saga: SagaState, row: Pick<DrivenMigration, 'vm' | 'policy'>): MeasuredFigures | null | undefined {
  return saga.phase === 'completed' ? measuredByMigration(saga, row.vm.memoryMiB, row.policy?.bandwidthMiBps) : undefined;
}

/**
 * The one place that writes a `migrations` row (create, start, every saga transition, cancel, leases).
 * Every transition is the pure saga's (`step`), and is committed with the events it implies (outbox) and
 * with its due time (`due_at`, see due-time.ts) in one transaction, before any action runs.
 *
 * It keeps the migrations this replica drives as last committed (saga and version): a transition then costs
 * one statement, an UPDATE guarded by the version and the lease with the outbox INSERT in it. Any surprise
 * (another replica, a restart) falls back to the locked read-modify-write.
 */
@Injectable()
export class MigrationStore {
  private readonly cache = new Map<string, DrivenMigration>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
    private readonly clock: DbClock,
    private readonly fence: LeaseFence,
    private readonly direct: DirectPublisher,
  ) {}

  private get replicaId(): string {
    return this.config.schedulerId;
  }

  /** The migration as this replica last committed it, if it drives it. */
  current(id: string): DrivenMigration | undefined {
    return this.cache.get(id);
  }

  /**
   * Stores a new migration with its `migration.requested` event, in the caller's transaction (admission's),
   * in one statement that also deletes the outbox rows of events already published (DirectPublisher).
   * `start`: admission found a slot for it under its lock, so it is stored started (its saga's first
   * transition) and leased to this replica, with the events of its start after `requested`; `started` is
   * then that transition, for `started` once the caller's transaction commits.
   */
  async insert(m: EntityManager, row: NewMigration, requested: OutboxRow, sent: string[], start: boolean): Promise<{ saved: MigrationEntity; started?: Transition }> {
    // the row as PostgreSQL will hand it back: no undefined where a column holds NULL
    const now = new Date(this.clock.now());
    const saved: MigrationEntity = {
      ...row,
      requestedBy: row.requestedBy ?? null,
      placement: row.placement ?? null,
      traceParent: row.traceParent ?? null,
      prediction: row.prediction ?? null,
      predictionError: row.predictionError ?? null,
      state: 'queued',
      version: 1,
      leaseOwner: null,
      leaseUntil: null,
      dueAt: null,
      updatedAt: now,
      finishedAt: null,
      measured: null,
    };
    // started: driven from the cache, which keeps no placement (DrivenMigration); its lease stamped as sent now
    const leaseSentAt = start ? this.fence.mark() : undefined;
    const { placement: _placement, measured: _measured, ...driven } = saved;
    const started = start ? this.startOf(driven, now.getTime()) : undefined;
    const stored = started?.row ?? saved;
    await runPrepared(m, INSERT_MIGRATION, [
      stored.id,
      stored.vmId,
      stored.clusterId,
      stored.sourceHostId,
      stored.targetHostId,
      stored.state,
      JSON.stringify(stored.saga),
      JSON.stringify(stored.vm),
      JSON.stringify(stored.policy),
      stored.targetAddress,
      stored.requestedBy,
      saved.placement ? JSON.stringify(saved.placement) : null,
      stored.version,
      stored.traceParent,
      stored.prediction ? JSON.stringify(stored.prediction) : null,
      stored.predictionError,
      stored.createdAt,
      stored.updatedAt,
      stored.leaseOwner,
      stored.leaseUntil,
      stored.dueAt,
      JSON.stringify([requested, ...(started?.events ?? [])]),
      sent,
      now.getTime(),
      this.replicaId,
    ]);
    return { saved, started: started && { ...started, leaseSentAt } };
  }

  /**
   * Starts queued migrations (`ids`, oldest first) inside the caller's transaction (admission holds its
   * lock), leased to this replica.
   */
  async startQueued(m: EntityManager, ids: string[]): Promise<Transition[]> {
    if (ids.length === 0) return [];
    const rows = await runPrepared<DrivenMigration>(m, STARTING, [ids]);
    const leaseSentAt = this.fence.mark();
    const now = this.clock.now();
    const out: Transition[] = [];
    for (const row of rows) {
      const t = this.startOf(row, now);
      await runPrepared(m, START_QUEUED, [t.row.id, JSON.stringify(t.row.saga), t.row.state, t.row.version, t.row.updatedAt, t.row.dueAt, this.replicaId, t.row.leaseUntil]);
      await this.enqueueEvents(m, t.events);
      out.push({ ...t, leaseSentAt });
    }
    // their actions run only after the caller's transaction commits, and the fence learns of their leases
    // then (`started`): a renewal sent before that commit cannot see them, and would take them for lost
    return out;
  }

  /** A queued migration as its start leaves it (its saga's first transition), leased to this replica: nothing written yet. */
  private startOf<R extends DrivenMigration>(row: R, now: number): Omit<Transition, 'leaseSentAt'> & { row: R } {
    const { state, actions } = sagaStep(row.saga, { type: 'start' }, now);
    return {
      row: {
        ...row,
        saga: state,
        state: state.phase,
        version: row.version + 1,
        updatedAt: new Date(now),
        dueAt: at(dueAt(state, now)),
        leaseOwner: this.replicaId,
        leaseUntil: new Date(now + this.config.leaseTtlMs),
      },
      actions,
      events: outboxRows(state, actions),
    };
  }

  /**
   * What admission committed: the cache follows it, and the fence learns of the leases of the migrations it
   * started (stamped when their statement was sent, so never held longer than PostgreSQL holds them).
   */
  started(transitions: Transition[]): void {
    for (const { row, leaseSentAt } of transitions) {
      this.cache.set(row.id, row);
      if (leaseSentAt !== undefined) this.fence.granted([row.id], leaseSentAt);
    }
  }

  /**
   * Applies one event to one migration this replica drives and commits the result. null: it did not apply
   * (stale or irrelevant, or the migration is driven by another replica).
   */
  async apply(id: string, event: SagaEvent): Promise<Transition | null> {
    const cached = await this.applyCached(id, event);
    const outcome = cached === undefined ? await this.applyLocked(id, event) : cached;
    if (!outcome) return null;
    if (isTerminal(outcome.row.saga)) {
      this.cache.delete(id);
      this.fence.release(id);
    } else this.cache.set(id, outcome.row);
    return outcome;
  }

  /** The fast path: from the cached state, one guarded statement. undefined: not cached or it lost the race. */
  private async applyCached(id: string, event: SagaEvent): Promise<Transition | null | undefined> {
    const row = this.cache.get(id);
    if (!row) return undefined;
    const now = this.clock.now();
    const { state, actions } = sagaStep(row.saga, event, now);
    if (state === row.saga && actions.length === 0) return null; // stale or irrelevant
    const done = isTerminal(state);
    const due = dueAt(state, now);
    const events = outboxRows(state, actions, row.prediction?.predicted);
    const measured = measuredAtCompletion(state, row);
    // the rows of events already published go in the same statement; an end notifies admission of the other replicas
    const [{ updated }] = await this.direct.deletingAcknowledged((sent) =>
      runPrepared<{ updated: number }>(this.db, TRANSITION, [
        id,
        row.version,
        JSON.stringify(state),
        state.phase,
        now,
        done,
        this.replicaId,
        JSON.stringify(events),
        due,
        sent,
        SLOT_FREED_CHANNEL,
        measured === undefined ? null : JSON.stringify(measured),
      ]),
    );
    if (updated !== 1) {
      this.cache.delete(id); // someone else moved it: re-read under the lock
      return undefined;
    }
    return { row: { ...row, saga: state, state: state.phase, version: row.version + 1, updatedAt: new Date(now), dueAt: at(due) }, actions, events };
  }

  /** The safe path: read the row under a lock, check the lease, write. */
  private async applyLocked(id: string, event: SagaEvent): Promise<Transition | null> {
    return this.db.transaction(async (m) => {
      const [row] = await runPrepared<DrivenMigration>(m, LOCKED, [id]);
      if (!row) return null;
      if (row.leaseOwner !== this.replicaId) return null; // another replica drives it now
      return this.write(m, row, event);
    });
  }

  /** Writes one transition of a row read under a lock; null when the event does not apply. */
  private async write(m: EntityManager, row: DrivenMigration, event: SagaEvent): Promise<Transition | null> {
    const now = this.clock.now();
    const { state, actions } = sagaStep(row.saga, event, now);
    if (state === row.saga && actions.length === 0) return null; // stale or irrelevant
    const done = isTerminal(state);
    const next: DrivenMigration = {
      ...row,
      saga: state,
      state: state.phase,
      version: row.version + 1,
      updatedAt: new Date(now),
      finishedAt: done ? new Date(now) : null,
      dueAt: at(dueAt(state, now)),
      ...(done ? { leaseOwner: null, leaseUntil: null } : {}),
    };
    const measured = measuredAtCompletion(state, row);
    await m.getRepository(MigrationEntity).update(
      { id: row.id },
      {
        saga: state,
        state: next.state,
        version: next.version,
        updatedAt: next.updatedAt,
        finishedAt: next.finishedAt,
        dueAt: next.dueAt,
        ...(done ? { leaseOwner: null, leaseUntil: null } : {}),
        // a migration that measured nothing keeps SQL NULL here: a prediction then reads its saga, and finds nothing either
        ...(measured !== undefined ? { measured } : {}),
      } as never,
    );
    const events = outboxRows(state, actions, row.prediction?.predicted);
    await this.enqueueEvents(m, events);
    if (done) await m.query('SELECT pg_notify($1, $2)', [SLOT_FREED_CHANNEL, this.replicaId]);
    return { row: next, actions, events };
  }

  /**
   * Ends a migration that is still `queued` (nothing to undo) inside the caller's transaction, which holds
   * admission's lock so that it is not started meanwhile. null: it is not queued (any more).
   */
  async cancelQueued(m: EntityManager, id: string, reason: string, by: string): Promise<Transition | null> {
    const [row] = await runPrepared<DrivenMigration>(m, LOCKED, [id]);
    if (!row || row.state !== 'queued') return null;
    return this.write(m, row, { type: 'cancel-requested', reason, by });
  }

  /** Events of a transition into the outbox, in the caller's transaction. */
  private async enqueueEvents(m: EntityManager, rows: OutboxRow[]): Promise<void> {
    if (rows.length > 0) await runPrepared(m, EVENTS_INTO_OUTBOX, [JSON.stringify(rows), this.replicaId]);
  }

  /** Of these migrations, those with events still in the outbox (not yet published). */
  async withEventsWaiting(m: EntityManager, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await runPrepared<{ subject: string }>(m, WITH_EVENTS_WAITING, [ids]);
    return new Set(rows.map((r) => r.subject));
  }

  // ---- leases (LeaseKeeper decides when) ----

  /** A replica restarted under the same SCHEDULER_ID drives nothing yet: its migrations become claimable now. */
  async releaseOwnLeases(): Promise<void> {
    this.fence.releaseAll();
    await this.db.query(`UPDATE migrations SET lease_until = now() - interval '1 millisecond' WHERE lease_owner = $1 AND ${DRIVEN}`, [this.replicaId]);
    this.cache.clear();
  }

  /** Renews the leases this replica still holds (the others were claimed); the fence learns which. */
  async renewLeases(): Promise<void> {
    const sentAt = this.fence.mark();
    const renewed = await runPrepared<{ id: string }>(
      this.db,
      RENEW_LEASES,
      [this.replicaId, this.config.leaseTtlMs],
    );
    this.fence.renewed(
      renewed.map((r) => r.id),
      sentAt,
    );
  }

  /** Leases up to `limit` migrations whose lease lapsed (their replica died, or PostgreSQL was away) to this replica. */
  async claimOrphans(limit: number): Promise<string[]> {
    const sentAt = this.fence.mark();
    const claimed = await runPrepared<{ id: string }>(
      this.db,
      CLAIM_ORPHANS,
      [this.replicaId, this.config.leaseTtlMs, limit],
    );
    for (const { id } of claimed) this.cache.delete(id);
    this.fence.granted(
      claimed.map((c) => c.id),
      sentAt,
    );
    return claimed.map((c) => c.id);
  }

  /**
   * The migrations this replica leases whose next action is due (`due_at` has passed, by PostgreSQL's
   * clock), except those named in `inProgress` (their action runs here now), oldest due first.
   */
  async due(inProgress: string[], limit: number): Promise<string[]> {
    const rows = await runPrepared<{ id: string }>(
      this.db,
      DUE,
      [this.replicaId, inProgress, limit],
    );
    return rows.map((r) => r.id);
  }

  /** Migrations not yet ended, by state (for /metrics). */
  async countByState(): Promise<{ state: string; n: number }[]> {
    return this.db.query(`SELECT state, count(*)::int AS n FROM migrations WHERE state NOT IN (${terminal}) GROUP BY state`);
  }
}
