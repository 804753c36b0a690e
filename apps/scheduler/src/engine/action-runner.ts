import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { ErrorCode, isFlexmigError } from '@flexmig/contracts';
import { contextOfTraceparent, inSpan } from '@flexmig/messaging';
import type { SagaAction, SagaEvent, StepError } from '@flexmig/saga';
import { withLogFields } from '@flexmig/service-kit';
import { DbClock } from '../db-clock';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import type { DrivenMigration } from '../store/migration-store';
import { contextOf, MigrationContext, StepExecutor } from './step-executor';
import { abandonedAfter } from './due-time';
import { LeaseNotHeld } from './lease-fence';

/**
 * The saga's backoff is deterministic (its `notBefore` is persisted); a NATS outage fails every open
 * question at once, so the runner spreads the re-asking by up to this share of the wait.
 */
const requerySpread = 0.2;
/** A query has no deadline of its own: the bus's request timeout ends it well within this. */
const queryBoundMs = 30_000;

/** A send the LeaseFence refused has no outcome: it is not a failure of the step. */
const unlessFenced = (e: unknown): void => {
  if (e instanceof LeaseNotHeld) throw e;
};

export function toStepError(e: unknown): StepError {
  if (isFlexmigError(e)) return { code: e.code, message: e.message, retryable: e.retryable };
  return { code: ErrorCode.Internal, message: (e as Error)?.message ?? String(e), retryable: true };
}

/**
 * Calls `fn` after `delayMs`; returns what cancels it. An action due now starts in a microtask, right after
 * the transition that called for it: not through a timer (a 0 ms timeout rounds up to 1 ms, which every
 * step paid, three of them inside the guest's downtime), and ahead of the transition's events, whose
 * JetStream publishes (DirectPublisher) would otherwise reach NATS before the command.
 */
function wakeUp(fn: () => void, delayMs: number): () => void {
  if (delayMs <= 0) {
    let cancelled = false;
    queueMicrotask(() => {
      if (!cancelled) fn();
    });
    return () => {
      cancelled = true;
    };
  }
  const timer = setTimeout(fn, delayMs);
  return () => clearTimeout(timer);
}

type Work = Extract<SagaAction, { kind: 'run-step' | 'query-step' | 'compensate' }>;
/** Where outcomes go: the reconciler, which commits each one as a saga event. */
export type OutcomeSink = (migrationId: string, event: SagaEvent) => Promise<void>;

interface Held {
  action: Work;
  /** While waiting for the action's notBefore (or the slow-motion delay), or for the next turn: cancels the wake-up. */
  cancel?: () => void;
  /** After this (PostgreSQL's clock), the action counts as lost and the next pass re-issues it. */
  abandonAt: number;
}

/**
 * Runs the actions the saga called for (step commands, queries, compensations) through the StepExecutor,
 * and hands each outcome to the sink as a saga event. A migration has at most one action here at a time (the
 * saga does one thing at a time); a newer action of the same migration replaces a waiting one.
 *
 * Its timers are only wake-up hints: they keep the fast path fast. If one is lost, or an action throws
 * where it should not, the action is forgotten here, its row stays due in PostgreSQL, and the next
 * reconcile pass re-issues it (see Reconciler.pass). `inProgress()` tells the pass what runs here now.
 */
@Injectable()
export class ActionRunner implements OnApplicationShutdown {
  private readonly log = new Logger('saga');
  private readonly held = new Map<string, Held>();
  private sink: OutcomeSink = async () => undefined;
  private stopped = false;

  constructor(
    private readonly executor: StepExecutor,
    private readonly clock: DbClock,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
  ) {}

  onOutcome(sink: OutcomeSink): void {
    this.sink = sink;
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    for (const h of this.held.values()) h.cancel?.();
    this.held.clear();
  }

  /** The migrations whose action this replica runs (or is about to run) and has not given up on. */
  inProgress(): string[] {
    const now = this.clock.now();
    return [...this.held].filter(([, h]) => h.abandonAt > now).map(([id]) => id);
  }

  isInProgress(migrationId: string): boolean {
    const h = this.held.get(migrationId);
    return h !== undefined && h.abandonAt > this.clock.now();
  }

  /** Carries out what one committed transition of `row` called for. Returns at once; outcomes go to the sink. */
  run(row: DrivenMigration, actions: SagaAction[]): void {
    const ctx = contextOf(row);
    for (const a of actions) {
      switch (a.kind) {
        case 'run-step':
        case 'query-step':
        case 'compensate':
          this.hold(row.id, ctx, a);
          break;
        case 'publish':
          break; // already in the outbox, committed with the state
        case 'finish':
          this.forget(row.id);
          this.log.log(`migration ${row.id} finished: ${a.outcome}`);
          break;
        default: {
          const never: never = a;
          throw new Error(`unknown saga action ${JSON.stringify(never)}`);
        }
      }
    }
  }

  private hold(id: string, ctx: MigrationContext, a: Work): void {
    this.forget(id);
    const now = this.clock.now();
    const delay = Math.max(0, this.delayOf(a, now));
    const held: Held = { action: a, abandonAt: now + delay + this.graceMs() };
    const start = () => {
      held.cancel = undefined;
      if (this.stopped || this.held.get(id) !== held) return;
      const started = this.clock.now();
      // a timer runs on the process's monotonic clock and may fire a millisecond before notBefore as the
      // saga's clock (the database's) reads it: wait out the rest rather than send early
      const early = (a.notBefore ?? 0) - started;
      if (early > 0) {
        held.cancel = wakeUp(start, early);
        return;
      }
      held.abandonAt = abandonedAfter(a.kind === 'query-step' ? {} : a, started, a.kind === 'query-step' ? queryBoundMs : 1_000, this.graceMs());
      // held until its outcome is stored (the sink retries through a PostgreSQL outage), unless the stored
      // outcome's own next action has replaced it by then
      this.traced(ctx, a, () => this.outcomeOf(id, ctx, a))
        .then((event) => this.sink(id, event))
        .catch((e) =>
          e instanceof LeaseNotHeld
            ? // nothing was sent: forgotten here; if the lease is renewed, the reconcile pass re-issues it
              this.log.warn(e.message)
            : this.log.error(`migration ${id}: ${a.kind} of ${a.name} failed unexpectedly (the next pass re-issues it): ${(e as Error).stack}`),
        )
        .finally(() => {
          if (this.held.get(id) === held) this.held.delete(id);
        });
    };
    held.cancel = wakeUp(start, delay);
    this.held.set(id, held);
  }

  private forget(id: string): void {
    const h = this.held.get(id);
    if (!h) return;
    h.cancel?.();
    this.held.delete(id);
  }

  private graceMs(): number {
    return Math.max(1_000, 2 * this.config.reconcileIntervalMs);
  }

  private delayOf(a: Work, now: number): number {
    const wait = (a.notBefore ?? 0) - now;
    switch (a.kind) {
      case 'run-step':
        return Math.max(wait, this.config.stepDelayMs ?? 0);
      case 'query-step':
        return wait > 0 ? wait * (1 + requerySpread * Math.random()) : 0;
      case 'compensate':
        return wait;
    }
  }

  /**
   * One action in a span that continues the migration's trace (the request that created it): `step <n>
   * <name>`, `query step <n> <name>` or `compensate step <n> <name>`; its log lines carry the migration's fields.
   */
  private traced(ctx: MigrationContext, a: Work, work: () => Promise<SagaEvent>): Promise<SagaEvent> {
    const { ref } = ctx;
    const name = `${a.kind === 'run-step' ? '' : a.kind === 'query-step' ? 'query ' : 'compensate '}step ${a.step} ${a.name}`;
    const attributes = { 'flexmig.migration_id': ref.migrationId, 'flexmig.vm_id': ref.vmId, 'flexmig.step': a.step, 'flexmig.step_name': a.name, 'flexmig.attempt': a.attempt };
    return withLogFields({ migrationId: ref.migrationId, vmId: ref.vmId, hostId: ref.sourceHostId, step: a.step, stepName: a.name }, () =>
      inSpan(name, { parent: contextOfTraceparent(ctx.traceParent), attributes }, async (span) => {
        const event = await work();
        span.setAttribute('flexmig.outcome', event.type);
        return event;
      }),
    );
  }

  /** Sends the action and turns what came back into the saga event that reports it. */
  private async outcomeOf(id: string, ctx: MigrationContext, a: Work): Promise<SagaEvent> {
    switch (a.kind) {
      case 'run-step': {
        const timeoutMs = Math.max(1_000, a.deadline - this.clock.now());
        try {
          const result = await this.executor.run(ctx, a, timeoutMs);
          return { type: 'step-succeeded', step: a.step, attempt: a.attempt, result };
        } catch (e) {
          unlessFenced(e);
          if (isFlexmigError(e) && e.code === ErrorCode.Timeout) return { type: 'step-timed-out', step: a.step, attempt: a.attempt };
          const error = toStepError(e);
          this.log.warn(`migration ${id}: step ${a.name} attempt ${a.attempt} failed: ${error.message}`);
          return { type: 'step-failed', step: a.step, attempt: a.attempt, error };
        }
      }
      case 'query-step':
        try {
          return { type: 'step-outcome-resolved', step: a.step, attempt: a.attempt, ...(await this.executor.query(ctx, a)) };
        } catch (e) {
          unlessFenced(e);
          // the saga keeps asking, with its backoff, until the outcome has been unknown for too long
          this.log.warn(`migration ${id}: cannot ask about step ${a.name} attempt ${a.attempt} (${(e as Error).message})`);
          return { type: 'step-query-failed', step: a.step, attempt: a.attempt, error: toStepError(e) };
        }
      case 'compensate': {
        const timeoutMs = Math.max(1_000, a.deadline - this.clock.now());
        try {
          await this.executor.compensate(ctx, a, timeoutMs);
          return { type: 'compensation-succeeded', step: a.step, attempt: a.attempt };
        } catch (e) {
          unlessFenced(e);
          if (isFlexmigError(e) && e.code === ErrorCode.Timeout) return { type: 'compensation-timed-out', step: a.step, attempt: a.attempt };
          return { type: 'compensation-failed', step: a.step, attempt: a.attempt, error: toStepError(e) };
        }
      }
    }
  }
}
