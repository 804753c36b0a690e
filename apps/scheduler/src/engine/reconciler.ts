import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { isTerminal } from '@flexmig/saga';
import type { SagaEvent } from '@flexmig/saga';
import { withLogFields } from '@flexmig/service-kit';
import { type Backoff, backoffDelayMs, Repeats, sleep } from '@flexmig/timing';
import { DbClock } from '../db-clock';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { MigrationStore, Transition } from '../store/migration-store';
import { OutboxRelay } from '../store/outbox-relay';
import { DirectPublisher } from '../store/direct-publisher';
import { Admission } from '../admission/admission.service';
import { ActionRunner } from './action-runner';
import { LeaseKeeper } from './lease-keeper';
import { contextOf, STREAMING_STEPS, StepExecutor } from './step-executor';
import { observeTransition, setGauges } from './saga-metrics';

/**
 * Retrying to persist an event while PostgreSQL is unreachable: 200 ms, ×2.5 to 5 s. Jittered (−20 %):
 * every migration in flight retries against the same database when it comes back.
 */
const persistBackoff: Backoff = { initialMs: 200, multiplier: 2.5, maxMs: 5_000, jitter: 0.2 };
/** Due migrations one pass takes up; the rest wait for the next. */
const duePerPass = 200;
const resume: SagaEvent = { type: 'resume-after-restart' };

/**
 * The scheduler's engine: a level-triggered reconciler around the pure saga (STYLE.md 8).
 *
 * Every transition is committed first (state, due time and outbox in one transaction, MigrationStore),
 * then its actions run (ActionRunner). Outcomes come back as saga events through `apply`, one at a time
 * per migration. That is the fast path; its timers are only hints.
 *
 * The safety net is the reconcile tick (every RECONCILE_INTERVAL_MS): renew leases, claim the migrations of
 * dead replicas, admit what the limits allow, then the pass: load from PostgreSQL every migration this
 * replica leases whose next action is due (`due_at`) and is not in progress here, and re-drive it with
 * `resume-after-restart` (the same attempt again, which agents answer with their first answer; a query when
 * the command's deadline has passed; a fresh deadline for a compensation). A lost timer, a dropped action
 * or a rejection that was only logged costs at most one interval, never a parked migration.
 */
@Injectable()
export class Reconciler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('saga');
  private readonly tickFailures = new Repeats(this.log);
  private loop?: NodeJS.Timeout;
  private stopped = false;
  /** Events of one migration are applied one at a time, in arrival order (per-migration queue). */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: MigrationStore,
    private readonly runner: ActionRunner,
    private readonly leases: LeaseKeeper,
    private readonly admission: Admission,
    private readonly relay: OutboxRelay,
    private readonly direct: DirectPublisher,
    private readonly executor: StepExecutor,
    private readonly clock: DbClock,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.runner.onOutcome((id, event) => this.applyDurably(id, event));
    this.admission.onStarted((started) => {
      for (const { row, actions } of started) this.runner.run(row, actions);
    });
    const tick = async () => {
      if (this.stopped) return;
      try {
        await this.leases.boot();
        await this.clock.sync();
        await this.leases.renew();
        for (const id of await this.leases.claimOrphans()) {
          this.log.log(`migration ${id}: claimed by ${this.config.schedulerId}; resuming from its persisted state`);
          await this.applyDurably(id, resume);
        }
        await this.admission.dispatch();
        await this.pass();
        await this.relay.flush();
        setGauges(await this.store.countByState(), await this.relay.backlog());
        this.tickFailures.recovered('the reconcile tick');
      } catch (e) {
        this.tickFailures.failed(`reconcile tick failed (will retry): ${(e as Error).message}`);
      }
      if (!this.stopped) this.loop = setTimeout(tick, this.config.reconcileIntervalMs);
    };
    void tick();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.loop);
  }

  /**
   * One level-triggered pass: every migration this replica leases whose next action is due and not in
   * progress here is re-driven from its persisted state. Returns how many were.
   */
  async pass(): Promise<number> {
    const due = await this.store.due(this.runner.inProgress(), duePerPass);
    let redriven = 0;
    for (const id of due) {
      if (await this.apply(id, resume, { unlessInProgress: true })) {
        redriven++;
        this.log.warn(`migration ${id}: its next action was due and not in progress; re-issued by the reconcile pass`);
      }
    }
    return redriven;
  }

  /**
   * Applies one event to one migration: commit first, then act. Returns false when the event did not
   * apply (stale, or the migration is driven by another replica). Events of one migration queue up.
   * `unlessInProgress`: skip it if an action of the migration runs here by then (the pass's re-drive).
   */
  apply(id: string, event: SagaEvent, opts: { unlessInProgress?: boolean } = {}): Promise<boolean> {
    const run = (this.queues.get(id) ?? Promise.resolve()).then(() =>
      opts.unlessInProgress && this.runner.isInProgress(id) ? false : withLogFields({ migrationId: id }, () => this.applyNow(id, event)),
    );
    const settled = run.catch(() => undefined);
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return run;
  }

  private async applyNow(id: string, event: SagaEvent): Promise<boolean> {
    const t = await this.store.apply(id, event);
    if (!t) return false;
    this.act(t);
    // a finished migration frees its slots: start what waits for them (the other replicas hear of it from PostgreSQL)
    if (isTerminal(t.row.saga)) this.admission.slotFreed();
    return true;
  }

  private act({ row, actions, events }: Transition): void {
    observeTransition(row.saga, actions);
    this.runner.run(row, actions);
    this.direct.publish({ migrationId: row.id, rows: events, at: row.updatedAt, traceParent: row.traceParent, last: isTerminal(row.saga) });
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

  /** Cancels a migration before the point of no return; stops a running memory copy at once. */
  async cancel(id: string, reason: string, by: string): Promise<void> {
    const dequeued = await this.admission.cancelQueued(id, reason, by);
    if (dequeued) {
      observeTransition(dequeued.row.saga, dequeued.actions);
      return;
    }
    if (!(await this.apply(id, { type: 'cancel-requested', reason, by }))) return;
    const row = this.store.current(id);
    const running = row?.saga.steps.find((s) => s.status === 'running');
    if (row && running && STREAMING_STEPS.includes(running.name)) {
      await this.executor.abortTransfer(contextOf(row), running).catch((e) => this.log.warn(`abort of the transfer failed: ${(e as Error).message}`));
    }
  }
}
