import type { BackoffSchedule } from '@flexmig/timing';
import type { StepActor, StepName, StepNumber } from './steps';

/** Anything the saga stores must survive JSON.stringify/parse unchanged (it is persisted as JSONB). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Epoch milliseconds. The clock is an input (`now`); the saga never reads it. */
export type EpochMs = number;

/** A step or compensation error as an agent (or the scheduler) reported it (STYLE.md 9). */
export interface StepError {
  code: string;
  message: string;
  retryable: boolean;
}

// ---------------------------------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------------------------------

/**
 * `initialMs`: delay before the 2nd attempt (and before the 2nd query); `maxMs`: steps 8–9 retry
 * forever, so the delay must stop growing somewhere. No jitter: `notBefore` is persisted and must be
 * deterministic (the runner may spread sends itself).
 */
export type BackoffPolicy = BackoffSchedule;

export interface SagaPolicy {
  /** Attempts per step for steps 1–6 before the migration is rolled back. */
  maxAttempts: number;
  /** Attempts for step 7 before it is escalated (failed-needs-attention). Never rolled back. */
  maxResumeTargetAttempts: number;
  /**
   * Attempts per compensation before it is escalated, when its agent answered with an error. While the
   * agent cannot be reached, a compensation is retried until `outcomeUnknownLimitMs` instead.
   */
  maxCompensationAttempts: number;
  /** Attempts of steps 8–9 (the VM already runs on the target) before a human is called. */
  maxFinishAttempts: number;
  /**
   * How long the outcome of a step may stay unknown because its agent cannot be asked (no responder,
   * no answer), or a compensation may wait for its agent to be reachable again, before the migration
   * ends `failed-needs-attention` and frees its slots.
   */
  outcomeUnknownLimitMs: number;
  /**
   * Steps 1–6 failed UNAVAILABLE (the other agent does not answer: restarting, a host rebooting) are
   * retried beyond `maxAttempts` for this long from the step's first attempt, then rolled back. Optional
   * in a persisted state that predates it (the default then).
   */
  peerUnavailableRetryMs?: number;
  /** Per-attempt timeout of each step (ms), keyed by step name. */
  stepTimeoutMs: Record<StepName, number>;
  /** Per-attempt timeout of a compensation (ms). */
  compensationTimeoutMs: number;
  /** How long to wait before asking again about a step the agent reports `in-progress`. */
  inProgressPollMs: number;
  backoff: BackoffPolicy;
}

/** What a caller may override; nested records merge with the defaults. */
export interface SagaPolicyInput {
  maxAttempts?: number;
  maxResumeTargetAttempts?: number;
  maxCompensationAttempts?: number;
  maxFinishAttempts?: number;
  outcomeUnknownLimitMs?: number;
  peerUnavailableRetryMs?: number;
  stepTimeoutMs?: Partial<Record<StepName, number>>;
  compensationTimeoutMs?: number;
  inProgressPollMs?: number;
  backoff?: Partial<BackoffPolicy>;
}

// ---------------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------------

/**
 * `created` → `running` → `completed`, or `running` → `compensating` → `rolled-back` | `cancelled`.
 * `failed-needs-attention`: a compensation failed, or step 7 could not finish; nothing more is automatic.
 */
export type SagaPhase = 'created' | 'running' | 'compensating' | TerminalOutcome;
export type TerminalOutcome = 'completed' | 'rolled-back' | 'cancelled' | 'failed-needs-attention';

export type StepStatus =
  | 'pending' // never issued
  | 'running' // an attempt is issued (or scheduled, see notBefore) and its outcome not yet known
  | 'completed'
  | 'failed' // the step failed for good (its error is lastError)
  | 'compensating'
  | 'compensated'
  | 'compensation-failed' // escalated; see SagaState.attention
  | 'skipped'; // never ran: the migration was rolled back or cancelled first

/** While a step is `running`: waiting for the command's reply, or asking the agent what it did. */
export type InFlight = 'command' | 'query';

export interface CompensationState {
  attempt: number;
  startedAt: EpochMs;
  endedAt: EpochMs | null;
  deadline: EpochMs;
  notBefore: EpochMs | null;
  lastError: StepError | null;
  /**
   * Since when its agent could not be reached (nobody answered, or no reply in time); cleared by an
   * answer. Absent in states persisted before it existed.
   */
  unreachableSince?: EpochMs | null;
}

export interface StepState {
  step: StepNumber;
  name: StepName;
  status: StepStatus;
  /** Attempt number of the current (or last) attempt; 0 = never issued. Part of the idempotency key. */
  attempt: number;
  /** When the first attempt was issued. */
  startedAt: EpochMs | null;
  endedAt: EpochMs | null;
  /** When the step succeeded; set once, never cleared (a compensated step keeps it). */
  completedAt: EpochMs | null;
  /** While running: when the current attempt's outcome becomes unknown. */
  deadline: EpochMs | null;
  /** While running: the current attempt must not be sent before this (retry backoff). */
  notBefore: EpochMs | null;
  inFlight: InFlight | null;
  /** Queries sent about the current attempt (drives the query backoff). */
  queries: number;
  /**
   * Since when the agent could not be asked about the current attempt (its queries found no responder
   * or got no answer); cleared by any answer. Absent in states persisted before it existed.
   */
  unreachableSince?: EpochMs | null;
  /**
   * Bumped every time the saga issues something for this step (run, query, compensate). A change
   * between two states is what makes `decide` emit the corresponding action.
   */
  dispatches: number;
  lastError: StepError | null;
  result: JsonValue | null;
  compensation: CompensationState | null;
}

/** The first cause of a failure; never overwritten. */
export type FailureCause =
  | { kind: 'step-failed'; step: StepNumber; name: StepName; reason: string; error: StepError; attempts: number; at: EpochMs }
  | { kind: 'cancelled'; reason: string; by: string; at: EpochMs; duringStep: StepNumber | null };

/** Why a human must look (terminal `failed-needs-attention`). */
export type Attention =
  | { kind: 'compensation-failed'; step: StepNumber; name: StepName; error: StepError; at: EpochMs; uncompensatedSteps: StepNumber[] }
  | { kind: 'resume-target-failed'; step: 7; error: StepError; at: EpochMs }
  /** Steps 8–9 failed for good (or ran out of attempts): the VM runs on the target; the source or the record is left over. */
  | { kind: 'finish-failed'; step: StepNumber; error: StepError; at: EpochMs }
  /** The agent could not be asked what it did with a step for longer than `outcomeUnknownLimitMs`. */
  | { kind: 'outcome-unknown'; step: StepNumber; error: StepError; since: EpochMs; at: EpochMs };

export interface CancelRequest {
  reason: string;
  by: string;
  at: EpochMs;
}

export interface MigrationRef {
  migrationId: string;
  vmId: string;
  sourceHostId: string;
  targetHostId: string;
}

export interface SagaState {
  /** Version of this persisted shape. */
  schema: 1;
  ref: MigrationRef;
  phase: SagaPhase;
  policy: SagaPolicy;
  createdAt: EpochMs;
  startedAt: EpochMs | null;
  endedAt: EpochMs | null;
  /** Always nine entries, index = step number − 1. */
  steps: StepState[];
  cause: FailureCause | null;
  cancel: CancelRequest | null;
  attention: Attention | null;
}

// ---------------------------------------------------------------------------------------------------------------------
// Events (inputs)
// ---------------------------------------------------------------------------------------------------------------------

export type StepOutcome = 'completed' | 'not-started' | 'failed' | 'in-progress';

export type SagaEvent =
  | { type: 'start' }
  | { type: 'step-succeeded'; step: StepNumber; attempt: number; result?: JsonValue }
  | { type: 'step-failed'; step: StepNumber; attempt: number; error: StepError }
  | { type: 'step-timed-out'; step: StepNumber; attempt: number }
  | {
      type: 'step-outcome-resolved';
      step: StepNumber;
      attempt: number;
      outcome: StepOutcome;
      /** With `completed`: the step's result, as the agent recorded it. */
      result?: JsonValue;
      /** With `failed`: the agent's error, if it kept one. */
      error?: StepError;
    }
  /** `attempt`, when given, must be the compensation's current attempt (else the event is stale). */
  | { type: 'compensation-succeeded'; step: StepNumber; attempt?: number }
  | { type: 'compensation-failed'; step: StepNumber; attempt?: number; error: StepError }
  | { type: 'compensation-timed-out'; step: StepNumber; attempt: number }
  /** A query about the attempt could not be answered (the agent cannot be reached). */
  | { type: 'step-query-failed'; step: StepNumber; attempt: number; error: StepError }
  | { type: 'cancel-requested'; reason: string; by: string }
  | { type: 'resume-after-restart' };

export type SagaEventType = SagaEvent['type'];

// ---------------------------------------------------------------------------------------------------------------------
// Actions (outputs)
// ---------------------------------------------------------------------------------------------------------------------

export type PublishedEventType =
  | 'migration.step-completed'
  | 'migration.completed'
  | 'migration.failed'
  | 'migration.rolled-back'
  | 'migration.cancelled';

export type SagaAction =
  | {
      kind: 'run-step';
      migrationId: string;
      step: StepNumber;
      name: StepName;
      actor: StepActor;
      attempt: number;
      /** `<migrationId>:<step>:<attempt>` (STYLE.md 10): a repeat returns the first answer. */
      idempotencyKey: string;
      /** When no reply by then: feed `step-timed-out`. */
      deadline: EpochMs;
      /** Do not send before (retry backoff); null: now. */
      notBefore: EpochMs | null;
    }
  | {
      kind: 'query-step';
      migrationId: string;
      step: StepNumber;
      name: StepName;
      actor: StepActor;
      attempt: number;
      notBefore: EpochMs | null;
    }
  | {
      kind: 'compensate';
      migrationId: string;
      step: StepNumber;
      name: StepName;
      actor: StepActor;
      compensation: string;
      attempt: number;
      deadline: EpochMs;
      notBefore: EpochMs | null;
    }
  | {
      kind: 'publish';
      /** Deterministic CloudEvent id / JetStream message id, so a re-publish after a crash is de-duplicated. */
      id: string;
      type: PublishedEventType;
      subject: string;
      data: { [key: string]: JsonValue };
    }
  | { kind: 'finish'; migrationId: string; outcome: TerminalOutcome };

export type SagaActionKind = SagaAction['kind'];

export interface StepResult {
  state: SagaState;
  actions: SagaAction[];
}
