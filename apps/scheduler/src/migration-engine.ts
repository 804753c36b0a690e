import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { ErrorCode, eventContract, isFlexmigError, TERMINAL_MIGRATION_STATES } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { queryReturning } from '@flexmig/persistence';
import { isTerminal, step as sagaStep } from '@flexmig/saga';
import { type Backoff, backoffDelayMs, sleep } from '@flexmig/timing';
import type { JsonValue, SagaAction, SagaEvent, SagaState, StepError } from '@flexmig/saga';
import { DbClock } from './db-clock';
import { MigrationEntity, OutboxEntity } from './entities';
import { MigrationContext, StepExecutor } from './step-executor';
import { SCHEDULER_CONFIG, SchedulerConfig } from './config';
import { completionFigures } from './figures';
import { selectAdmissible } from './admission';
import { eventsDeadLettered, migrationDowntime, migrationDuration, migrationsByState, migrationsFinished, outboxBacklog, stepDuration } from './metrics';
import { ClusterSettingsService } from './cluster-settings.service';

const terminal = TERMINAL_MIGRATION_STATES.map((s) => `'${s}'`).join(', ');
/** States that hold an admission slot; `queued` waits for one. */
const driven = `state NOT IN (${terminal}, 'queued')`;
/** One PostgreSQL advisory lock serialises admission across replicas, so limits hold cluster-wide. */
const DISPATCH_LOCK = 0x666c786d; // "flxm"
/** And one serialises the outbox relay, so events leave in the order they were committed. */
const OUTBOX_LOCK = 0x666c786f;
/** A replica that finds another one dispatching tries again this soon. */
const dispatchRetryMs = 25;
/** Under load, events committed within this window leave in one batch (fewer relay transactions). */
const outboxBatchWindowMs = 10;
/**
 * The saga's backoff is deterministic (its `notBefore` is persisted); a NATS outage fails every open
 * question at once, so the runner spreads the re-asking by up to this share of the wait.
 */
const requerySpread = 0.2;
/**
 * Retrying to persist an event while PostgreSQL is unreachable: 200 ms, ×2.5 to 5 s. Jittered (−20 %):
 * every migration in flight retries against the same database when it comes back.
 */
const persistBackoff: Backoff = { initialMs: 200, multiplier: 2.5, maxMs: 5_000, jitter: 0.2 };

export function toStepError(e: unknown): StepError {
  if (isFlexmigError(e)) return { code: e.code, message: e.message, retryable: e.retryable };
  return { code: ErrorCode.Internal, message: (e as Error)?.message ?? String(e), retryable: true };
}

const contextOf = (row: MigrationEntity): MigrationContext => {
  const incoming = (row.saga.steps[1]?.result as { incomingAddress?: string } | null)?.incomingAddress;
  return { ref: row.saga.ref, vm: row.vm, policy: row.policy, targetAddress: row.targetAddress, ...(incoming ? { incomingAddress: incoming } : {}) };
};

/**
 * The scheduler's reconcile loop around the pure saga (STYLE.md 8): load the migration under a row lock,
 * let the saga decide, commit the new state together with the events it implies (outbox) BEFORE any
 * command is sent, then act, and feed each outcome back as an event.
 *
 * Replicas share the work through leases: a migration is driven only by the replica whose lease is
 * current; a replica that dies stops renewing, and another claims the migration and resumes it from its
 * persisted state (`resume-after-restart`: in-flight commands are re-sent, and agents answer repeats
 * with their first answer).
 */
@Injectable()
export class MigrationEngine implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('saga');
  private readonly timers = new Set<NodeJS.Timeout>();
  private loop?: NodeJS.Timeout;
  private stopped = false;
  private flushing = false;
  private dispatchLoop?: Promise<void>;
  private dispatchAgain = false;
  private flushLoop?: Promise<void>;
  private flushAgain = false;
  /**
   * The migrations this replica drives, as last committed (saga and version). A step then costs one
   * statement: an UPDATE guarded by the version and the lease, with the outbox INSERT in the same
   * statement. Any surprise (another replica, a restart) falls back to the locked read-modify-write.
   */
  private readonly cache = new Map<string, MigrationEntity>();
  /** Events of one migration are applied one at a time, in arrival order (per-migration queue). */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly executor: StepExecutor,
    private readonly settings: ClusterSettingsService,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
    private readonly clock: DbClock,
  ) {}

  get replicaId(): string {
    return this.config.schedulerId;
  }

  onApplicationBootstrap(): void {
    let booted = false;
    const tick = async () => {
      if (this.stopped) return;
      try {
        if (!booted) {
          // a replica restarted under the same SCHEDULER_ID drives nothing yet: take its migrations back now
          await this.db.query(`UPDATE migrations SET lease_until = now() - interval '1 millisecond' WHERE lease_owner = $1 AND ${driven}`, [this.replicaId]);
          booted = true;
        }
        await this.clock.sync();
        await this.renewLeases();
        await this.claimOrphans();
        await this.dispatch();
        await this.flushOutbox();
        await this.countForMetrics();
      } catch (e) {
        this.log.warn(`reconcile tick failed (will retry): ${(e as Error).message}`);
      }
      if (!this.stopped) this.loop = setTimeout(tick, this.config.reconcileIntervalMs);
    };
    void tick();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.loop);
    for (const t of this.timers) clearTimeout(t);
  }

  /**
   * Queues a new migration (state `queued`, saga not started) with its `migration.requested` event in
   * the same commit, then lets the dispatcher start it as soon as the limits allow.
   */
  async admit(row: Omit<MigrationEntity, 'version' | 'leaseOwner' | 'leaseUntil' | 'state' | 'updatedAt' | 'finishedAt'>, requested: OutboxEntity): Promise<MigrationEntity> {
    const now = new Date(this.clock.now());
    const entity = await this.db.transaction(async (m) => {
      const saved = await m.getRepository(MigrationEntity).save({
        ...row,
        state: 'queued',
        version: 1,
        leaseOwner: null,
        leaseUntil: null,
        updatedAt: now,
        finishedAt: null,
      });
      await m.getRepository(OutboxEntity).insert(requested as never);
      return saved;
    });
    await this.dispatch();
    this.flushSoon();
    // started by the dispatch (and cached), or still queued
    return this.cache.get(entity.id) ?? entity;
  }

  /**
   * Starts queued migrations, oldest first, as far as the limits allow (outbound and inbound per host,
   * per cluster). Calls coalesce into one loop per replica (so a burst of requests costs one pass, and
   * one pool connection, not one each); the resolved promise means a pass that began after the call
   * has finished.
   */
  dispatch(): Promise<void> {
    this.dispatchAgain = true;
    this.dispatchLoop ??= (async () => {
      try {
        while (this.dispatchAgain && !this.stopped) {
          this.dispatchAgain = false;
          await this.dispatchOnce();
        }
      } catch (e) {
        this.log.warn(`dispatch failed (the next tick retries): ${(e as Error).message}`);
      } finally {
        this.dispatchLoop = undefined;
      }
    })();
    return this.dispatchLoop;
  }

  /**
   * One pass, under an advisory lock so that two replicas never admit past a limit together. A replica
   * that finds the lock taken does not wait for it (holding a connection while waiting is what starves a
   * pool); it tries again a moment later. A started migration is leased to this replica in the same commit.
   */
  private async dispatchOnce(): Promise<void> {
    const started = await this.db.transaction(async (m) => {
      const [{ locked }] = await m.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [DISPATCH_LOCK]);
      if (!locked) {
        const t = setTimeout(() => void this.dispatch(), dispatchRetryMs);
        this.timers.add(t);
        return [];
      }
      const queued: MigrationEntity[] = await m.getRepository(MigrationEntity).find({ where: { state: 'queued' }, order: { createdAt: 'ASC' }, take: 1000 });
      if (queued.length === 0) return [];
      const active: { cluster_id: string; source_host_id: string; target_host_id: string }[] = await m.query(
        `SELECT cluster_id, source_host_id, target_host_id FROM migrations WHERE ${driven}`,
      );
      const limitsOf = await this.settings.limitsFor([...new Set(queued.map((q) => q.clusterId))], m);
      const ids = new Set(
        selectAdmissible(
          queued,
          active.map((a) => ({ clusterId: a.cluster_id, sourceHostId: a.source_host_id, targetHostId: a.target_host_id })),
          limitsOf,
        ),
      );
      const out: { row: MigrationEntity; actions: SagaAction[] }[] = [];
      const now = this.clock.now();
      for (const row of queued.filter((q) => ids.has(q.id))) {
        const { state, actions } = sagaStep(row.saga, { type: 'start' }, now);
        await m.getRepository(MigrationEntity).update(
          { id: row.id },
          {
            saga: state,
            state: state.phase,
            version: row.version + 1,
            updatedAt: new Date(now),
            leaseOwner: this.replicaId,
            leaseUntil: new Date(now + this.config.leaseTtlMs),
          } as never,
        );
        await this.enqueueEvents(m, state, actions);
        out.push({ row: { ...row, saga: state, state: state.phase, version: row.version + 1, leaseOwner: this.replicaId }, actions });
      }
      return out;
    });
    for (const { row } of started) this.cache.set(row.id, row);
    for (const { row, actions } of started) this.execute(row, actions);
    if (started.length) this.flushSoon();
  }

  /**
   * Applies one event to one migration: persist first, then act. Returns false when the event did not
   * apply (stale, or the migration is driven by another replica). Events of one migration queue up.
   */
  apply(id: string, event: SagaEvent): Promise<boolean> {
    const run = (this.queues.get(id) ?? Promise.resolve()).then(() => this.applyNow(id, event));
    const settled = run.catch(() => undefined);
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return run;
  }

  private async applyNow(id: string, event: SagaEvent): Promise<boolean> {
    const cached = await this.applyCached(id, event);
    const outcome = cached === undefined ? await this.applyLocked(id, event) : cached;
    if (!outcome) return false;
    const { row, actions } = outcome;
    if (isTerminal(row.saga)) this.cache.delete(id);
    else this.cache.set(id, row);
    this.observe(row.saga, actions);
    this.execute(row, actions);
    if (actions.some((a) => a.kind === 'publish')) this.flushSoon();
    // a finished migration frees its slots: start what waits for them
    if (isTerminal(row.saga)) void this.dispatch();
    return true;
  }

  /** The fast path: from the cached state, one guarded statement. undefined: not cached or it lost the race. */
  private async applyCached(id: string, event: SagaEvent): Promise<{ row: MigrationEntity; actions: SagaAction[] } | null | undefined> {
    const row = this.cache.get(id);
    if (!row) return undefined;
    const now = this.clock.now();
    const { state, actions } = sagaStep(row.saga, event, now);
    if (state === row.saga && actions.length === 0) return null; // stale or irrelevant
    const done = isTerminal(state);
    const events = this.outboxRows(state, actions);
    const [{ updated }] = await this.db.query(
      `WITH u AS (
         UPDATE migrations SET saga = $3::json, state = $4, version = version + 1, updated_at = to_timestamp($5::double precision / 1000),
           finished_at = CASE WHEN $6 THEN to_timestamp($5::double precision / 1000) END,
           lease_owner = CASE WHEN $6 THEN NULL ELSE lease_owner END, lease_until = CASE WHEN $6 THEN NULL ELSE lease_until END
         WHERE id = $1 AND version = $2 AND lease_owner = $7 RETURNING id),
       o AS (
         INSERT INTO outbox (event_id, type, subject, data, created_at)
         SELECT e.event_id, e.type, e.subject, e.data, now() FROM u, jsonb_to_recordset($8::jsonb) AS e(event_id text, type text, subject text, data jsonb)
         ON CONFLICT (event_id) DO NOTHING)
       SELECT count(*)::int AS updated FROM u`,
      [id, row.version, JSON.stringify(state), state.phase, now, done, this.replicaId, JSON.stringify(events)],
    );
    if (updated !== 1) {
      this.cache.delete(id); // someone else moved it: re-read under the lock
      return undefined;
    }
    return { row: { ...row, saga: state, state: state.phase, version: row.version + 1 }, actions };
  }

  /** The safe path: read the row under a lock, check the lease, write. */
  private async applyLocked(id: string, event: SagaEvent): Promise<{ row: MigrationEntity; actions: SagaAction[] } | null> {
    return this.db.transaction(async (m) => {
      const row = await m.getRepository(MigrationEntity).findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!row) return null;
      if (row.leaseOwner !== this.replicaId) return null; // another replica drives it now
      const now = this.clock.now();
      const { state, actions } = sagaStep(row.saga, event, now);
      if (state === row.saga && actions.length === 0) return null; // stale or irrelevant
      const done = isTerminal(state);
      await m.getRepository(MigrationEntity).update(
        { id },
        // (cast: TypeORM's deep-partial typing of a JSONB column of this depth does not terminate)
        {
          saga: state,
          state: state.phase,
          version: row.version + 1,
          updatedAt: new Date(now),
          finishedAt: done ? new Date(now) : null,
          ...(done ? { leaseOwner: null, leaseUntil: null } : {}),
        } as never,
      );
      await this.enqueueEvents(m, state, actions);
      return { row: { ...row, saga: state, state: state.phase, version: row.version + 1 }, actions };
    });
  }

  /** `apply` that survives a PostgreSQL outage: keeps the event and retries until it is stored. */
  private async applyDurably(id: string, event: SagaEvent): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      try {
        await this.apply(id, event);
        return;
      } catch (e) {
        const wait = backoffDelayMs(persistBackoff, i + 1);
        this.log.warn(`migration ${id}: could not persist ${event.type} (${(e as Error).message}); retrying in ${wait} ms`);
        await sleep(wait);
      }
    }
  }

  /** The events an outcome implies, as outbox rows (`migration.completed` gets its figures here). */
  private outboxRows(state: SagaState, actions: SagaAction[]): { event_id: string; type: string; subject: string; data: Record<string, JsonValue> }[] {
    return actions.flatMap((a) =>
      a.kind !== 'publish'
        ? []
        : [{ event_id: a.id, type: a.type, subject: a.subject, data: a.type === 'migration.completed' ? { ...a.data, ...completionFigures(state) } : a.data }],
    );
  }

  private async enqueueEvents(m: EntityManager, state: SagaState, actions: SagaAction[]): Promise<void> {
    const rows = this.outboxRows(state, actions);
    if (rows.length === 0) return;
    await m.query(
      `INSERT INTO outbox (event_id, type, subject, data, created_at)
       SELECT e.event_id, e.type, e.subject, e.data, now() FROM jsonb_to_recordset($1::jsonb) AS e(event_id text, type text, subject text, data jsonb)
       ON CONFLICT (event_id) DO NOTHING`,
      [JSON.stringify(rows)],
    );
  }

  private later(delayMs: number, fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn().catch((e) => this.log.error(`action failed unexpectedly: ${(e as Error).stack}`));
    }, Math.max(0, delayMs));
    this.timers.add(t);
  }

  private execute(row: MigrationEntity, actions: SagaAction[]): void {
    const ctx = contextOf(row);
    const id = row.id;
    for (const a of actions) {
      switch (a.kind) {
        case 'run-step':
          this.later(Math.max((a.notBefore ?? 0) - this.clock.now(), this.config.stepDelayMs ?? 0), async () => {
            const timeoutMs = Math.max(1_000, a.deadline - this.clock.now());
            let event: SagaEvent;
            try {
              const result = await this.executor.run(ctx, a, timeoutMs);
              event = { type: 'step-succeeded', step: a.step, attempt: a.attempt, result };
            } catch (e) {
              event =
                isFlexmigError(e) && e.code === ErrorCode.Timeout
                  ? { type: 'step-timed-out', step: a.step, attempt: a.attempt }
                  : { type: 'step-failed', step: a.step, attempt: a.attempt, error: toStepError(e) };
              if (event.type === 'step-failed') this.log.warn(`migration ${id}: step ${a.step} ${a.name} attempt ${a.attempt} failed: ${event.error.message}`);
            }
            await this.applyDurably(id, event);
          });
          break;
        case 'query-step': {
          const wait = (a.notBefore ?? 0) - this.clock.now();
          this.later(wait > 0 ? wait * (1 + requerySpread * Math.random()) : 0, async () => {
            let event: SagaEvent;
            try {
              const r = await this.executor.query(ctx, a);
              event = { type: 'step-outcome-resolved', step: a.step, attempt: a.attempt, ...r };
            } catch (e) {
              // the saga keeps asking, with its backoff, until the outcome has been unknown for too long
              this.log.warn(`migration ${id}: cannot ask about step ${a.step} ${a.name} attempt ${a.attempt} (${(e as Error).message})`);
              event = { type: 'step-query-failed', step: a.step, attempt: a.attempt, error: toStepError(e) };
            }
            await this.applyDurably(id, event);
          });
          break;
        }
        case 'compensate':
          this.later((a.notBefore ?? 0) - this.clock.now(), async () => {
            const timeoutMs = Math.max(1_000, a.deadline - this.clock.now());
            let event: SagaEvent;
            try {
              await this.executor.compensate(ctx, a, timeoutMs);
              event = { type: 'compensation-succeeded', step: a.step, attempt: a.attempt };
            } catch (e) {
              event =
                isFlexmigError(e) && e.code === ErrorCode.Timeout
                  ? { type: 'compensation-timed-out', step: a.step, attempt: a.attempt }
                  : { type: 'compensation-failed', step: a.step, attempt: a.attempt, error: toStepError(e) };
            }
            await this.applyDurably(id, event);
          });
          break;
        case 'publish':
          break; // already in the outbox, committed with the state
        case 'finish':
          this.log.log(`migration ${id} finished: ${a.outcome}`);
          break;
        default: {
          const never: never = a;
          throw new Error(`unknown saga action ${JSON.stringify(never)}`);
        }
      }
    }
  }

  /** Step and outcome figures for /metrics, from what the saga just decided. */
  private observe(state: SagaState, actions: SagaAction[]): void {
    for (const a of actions) {
      if (a.kind === 'publish' && a.type === 'migration.step-completed') {
        stepDuration.observe({ step: String(a.data.stepName) }, Number(a.data.durationMs) / 1000);
      } else if (a.kind === 'finish') {
        migrationsFinished.inc({ outcome: a.outcome });
        if (a.outcome === 'completed') {
          const f = completionFigures(state);
          migrationDuration.observe(f.totalTimeMs / 1000);
          migrationDowntime.observe(f.downtimeMs / 1000);
        }
      }
    }
  }

  private async countForMetrics(): Promise<void> {
    const rows: { state: string; n: number }[] = await this.db.query(
      `SELECT state, count(*)::int AS n FROM migrations WHERE state NOT IN (${terminal}) GROUP BY state`,
    );
    migrationsByState.reset();
    for (const st of ['queued', 'created', 'running', 'compensating']) migrationsByState.set({ state: st }, rows.find((r) => r.state === st)?.n ?? 0);
    const [{ n }] = await this.db.query('SELECT count(*)::int AS n FROM outbox');
    outboxBacklog.set(n);
  }

  /** Cancels a migration before the point of no return; stops a running memory copy at once. */
  async cancel(id: string, reason: string, by: string): Promise<void> {
    if (await this.cancelQueued(id, reason, by)) return;
    const applied = await this.apply(id, { type: 'cancel-requested', reason, by });
    if (!applied) return;
    const row = await this.db.getRepository(MigrationEntity).findOneBy({ id });
    const running = row?.saga.steps.find((s) => s.status === 'compensating' || s.status === 'running');
    if (row && running && (running.step === 3 || running.step === 4) && running.status === 'running') {
      await this.executor.abortTransfer(contextOf(row), running.step).catch((e) => this.log.warn(`abort of the transfer failed: ${(e as Error).message}`));
    }
  }

  /** A migration still in the queue has nothing to undo: it ends `cancelled` at once. */
  private async cancelQueued(id: string, reason: string, by: string): Promise<boolean> {
    return this.db.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [DISPATCH_LOCK]);
      const row = await m.getRepository(MigrationEntity).findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!row || row.state !== 'queued') return null;
      const now = this.clock.now();
      const { state, actions } = sagaStep(row.saga, { type: 'cancel-requested', reason, by }, now);
      await m.getRepository(MigrationEntity).update(
        { id },
        { saga: state, state: state.phase, version: row.version + 1, updatedAt: new Date(now), finishedAt: isTerminal(state) ? new Date(now) : null } as never,
      );
      await this.enqueueEvents(m, state, actions);
      return { state, actions };
    }).then((done) => {
      if (!done) return false;
      this.observe(done.state, done.actions);
      this.flushSoon();
      return true;
    });
  }

  // ---- leases ----

  private async renewLeases(): Promise<void> {
    await this.db.query(
      `UPDATE migrations SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
       WHERE lease_owner = $1 AND lease_until > now() AND ${driven}`,
      [this.replicaId, this.config.leaseTtlMs],
    );
  }

  /** Takes over migrations whose lease lapsed (their replica died, or PostgreSQL was away) and resumes them. */
  private async claimOrphans(): Promise<void> {
    const claimed = await queryReturning<{ id: string }>(
      this.db,
      `UPDATE migrations SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::double precision / 1000)
       WHERE id IN (
         SELECT id FROM migrations
         WHERE ${driven} AND (lease_until IS NULL OR lease_until < now())
         ORDER BY created_at LIMIT 50 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [this.replicaId, this.config.leaseTtlMs],
    );
    for (const { id } of claimed) {
      this.log.log(`migration ${id}: claimed by ${this.replicaId}; resuming from its persisted state`);
      await this.applyDurably(id, { type: 'resume-after-restart' });
    }
  }

  // ---- outbox ----

  /** Publishes what the outbox holds, soon; a failure is logged and the next tick tries again. */
  private flushSoon(): void {
    this.flushAgain = true;
    this.flushLoop ??= (async () => {
      try {
        // the first flush goes at once; requests that arrive while one runs (load) wait a moment and go together
        for (let first = true; this.flushAgain && !this.stopped; first = false) {
          if (!first) await sleep(outboxBatchWindowMs);
          this.flushAgain = false;
          await this.flushOutbox();
        }
      } catch (e) {
        this.log.warn(`outbox not flushed yet (the next tick retries): ${(e as Error).message}`);
      } finally {
        this.flushLoop = undefined;
      }
    })();
  }

  /**
   * Publishes the outbox in commit order, in batches: one replica at a time (an advisory lock; the
   * others skip), each batch's publishes in flight together (sent in order on one connection, so the
   * stream keeps that order), then deleted in one statement. A crash between publish and delete
   * re-publishes; JetStream drops the repeat by its message id. An event that breaks its contract (or
   * whose type is unknown) can never be published: it moves to `outbox_dead_letter`, with a metric and
   * an error in the log, in the same transaction, and the others go on. A publish that fails (NATS
   * away) leaves the whole batch for the next try.
   */
  async flushOutbox(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let more = true; more && !this.stopped; ) {
        more = await this.db.transaction(async (m) => {
          const [{ locked }] = await m.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [OUTBOX_LOCK]);
          if (!locked) return false;
          const rows = await m.getRepository(OutboxEntity).find({ order: { seq: 'ASC' }, take: 200 });
          if (rows.length === 0) return false;
          const dead: { seq: string; error: string }[] = [];
          const publishes: Promise<unknown>[] = [];
          for (const r of rows) {
            const refusal = outboxRefusal(r);
            if (refusal) dead.push({ seq: r.seq, error: refusal });
            else publishes.push(this.bus.publishEvent(eventContract(r.type)!, r.data, { id: r.eventId, subject: r.subject, source: '/flexmig/scheduler', time: r.createdAt }));
          }
          await Promise.all(publishes);
          if (dead.length) await this.deadLetter(m, rows, dead);
          await m.query('DELETE FROM outbox WHERE seq = ANY($1::bigint[])', [rows.map((r) => r.seq)]);
          return rows.length === 200;
        });
      }
    } finally {
      this.flushing = false;
    }
  }

  private async deadLetter(m: EntityManager, rows: OutboxEntity[], dead: { seq: string; error: string }[]): Promise<void> {
    await m.query(
      `INSERT INTO outbox_dead_letter (seq, event_id, type, subject, data, created_at, error)
       SELECT o.seq, o.event_id, o.type, o.subject, o.data, o.created_at, d.error
       FROM outbox o JOIN jsonb_to_recordset($1::jsonb) AS d(seq bigint, error text) ON d.seq = o.seq
       ON CONFLICT (seq) DO NOTHING`,
      [JSON.stringify(dead)],
    );
    for (const d of dead) {
      const r = rows.find((x) => x.seq === d.seq)!;
      eventsDeadLettered.inc({ type: r.type });
      this.log.error(`event ${r.eventId} (${r.type}) cannot be published and went to outbox_dead_letter: ${d.error}`);
    }
  }
}

/** Why an outbox row can never be published (unknown type, data outside its contract), or undefined. */
function outboxRefusal(r: Pick<OutboxEntity, 'type' | 'data'>): string | undefined {
  const contract = eventContract(r.type);
  if (!contract) return `unknown event type ${r.type}`;
  const checked = contract.data.safeParse(r.data);
  return checked.success ? undefined : checked.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ');
}
