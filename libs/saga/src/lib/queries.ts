import { POINT_OF_NO_RETURN, stepDefinition, type StepActor, type StepName, type StepNumber } from './steps';
import type {
  Attention,
  CancelRequest,
  FailureCause,
  InFlight,
  SagaPhase,
  SagaState,
  StepError,
  StepState,
  StepStatus,
  TerminalOutcome,
} from './types';

/**
 * Milliseconds from `start` to `end`, never negative. The times come from whichever scheduler replica
 * applied each event (on PostgreSQL's clock, but estimated to a few ms): a step handed from one replica to
 * another can end "before" it started by that much, and a negative duration would break the event contract.
 */
export function elapsedMs(start: number | null, end: number | null): number | null {
  return start === null || end === null ? null : Math.max(0, end - start);
}

const TERMINAL: ReadonlySet<SagaPhase> = new Set<TerminalOutcome>(['completed', 'rolled-back', 'cancelled', 'failed-needs-attention']);

export const isTerminal = (s: SagaState): boolean => TERMINAL.has(s.phase);

export const terminalOutcome = (s: SagaState): TerminalOutcome | null => (isTerminal(s) ? (s.phase as TerminalOutcome) : null);

/** The step something is in flight for (running forward, or being compensated); null when idle or terminal. */
export function currentStep(s: SagaState): StepState | null {
  return s.steps.find((st) => st.status === 'running' || st.status === 'compensating') ?? null;
}

/** True once the step 7 command may have been sent: from then on the source is never resumed. */
export const pointOfNoReturnPassed = (s: SagaState): boolean => {
  const status = s.steps[POINT_OF_NO_RETURN - 1].status;
  return status !== 'pending' && status !== 'skipped';
};

export type CanCancel = { ok: true } | { ok: false; reason: string };

/** A cancel is accepted only before step 7 is issued, and only once. */
export function canCancel(s: SagaState): CanCancel {
  if (isTerminal(s)) return { ok: false, reason: `the migration is already ${s.phase}` };
  if (s.phase === 'compensating') return { ok: false, reason: 'the migration is already being rolled back' };
  if (s.cancel) return { ok: false, reason: `a cancel was already requested by ${s.cancel.by}` };
  if (pointOfNoReturnPassed(s)) {
    return { ok: false, reason: `step ${POINT_OF_NO_RETURN} (resume-target) has been issued: past the point of no return, the migration only goes forward` };
  }
  return { ok: true };
}

export interface StepSummary {
  step: StepNumber;
  name: StepName;
  actor: StepActor;
  status: StepStatus;
  attempt: number;
  inFlight: InFlight | null;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  lastError: StepError | null;
  compensation: {
    name: string;
    attempt: number;
    startedAt: string;
    endedAt: string | null;
    lastError: StepError | null;
  } | null;
}

export interface SagaSummary {
  migrationId: string;
  phase: SagaPhase;
  terminal: boolean;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  currentStep: { step: StepNumber; name: StepName; status: StepStatus; attempt: number } | null;
  pointOfNoReturnPassed: boolean;
  cancellable: boolean;
  cause: FailureCause | null;
  cancel: CancelRequest | null;
  attention: Attention | null;
  steps: StepSummary[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** What an API shows: every step with its status and times (ISO 8601), plus why it stopped if it did. */
export function summarize(s: SagaState): SagaSummary {
  const cur = currentStep(s);
  return {
    migrationId: s.ref.migrationId,
    phase: s.phase,
    terminal: isTerminal(s),
    startedAt: iso(s.startedAt),
    endedAt: iso(s.endedAt),
    durationMs: elapsedMs(s.startedAt, s.endedAt),
    currentStep: cur ? { step: cur.step, name: cur.name, status: cur.status, attempt: cur.attempt } : null,
    pointOfNoReturnPassed: pointOfNoReturnPassed(s),
    cancellable: canCancel(s).ok,
    cause: s.cause,
    cancel: s.cancel,
    attention: s.attention,
    steps: s.steps.map((st) => ({
      step: st.step,
      name: st.name,
      actor: stepDefinition(st.step).actor,
      status: st.status,
      attempt: st.attempt,
      inFlight: st.inFlight,
      startedAt: iso(st.startedAt),
      endedAt: iso(st.endedAt),
      durationMs: elapsedMs(st.startedAt, st.endedAt),
      lastError: st.lastError,
      compensation: st.compensation
        ? {
            name: stepDefinition(st.step).compensation ?? '',
            attempt: st.compensation.attempt,
            startedAt: iso(st.compensation.startedAt)!,
            endedAt: iso(st.compensation.endedAt),
            lastError: st.compensation.lastError,
          }
        : null,
    })),
  };
}
