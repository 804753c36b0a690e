import { ErrorCode, FlexmigError, pausedWithSyncMemory, pausedWithTransferMemory, resumedWithTransferState } from '@flexmig/contracts';
import { backoffDelayMs } from '@flexmig/timing';
import { copyJson } from './json-copy';
import { defaultPeerUnavailableRetryMs, resolvePolicy } from './policy';
import { canCancel, isTerminal } from './queries';
import { POINT_OF_NO_RETURN, STEPS, isStepNumber, stepDefinition, type StepNumber } from './steps';
import type {
  EpochMs,
  JsonValue,
  MigrationRef,
  SagaEvent,
  SagaPolicyInput,
  SagaState,
  StepError,
  StepState,
} from './types';

/** A new saga, not yet started (`created`). The policy is resolved once and persisted with the state. */
export function createSaga(ref: MigrationRef, now: EpochMs, policy: SagaPolicyInput = {}): SagaState {
  for (const key of ['migrationId', 'vmId', 'sourceHostId', 'targetHostId'] as const) {
    if (typeof ref[key] !== 'string' || ref[key].length === 0) {
      throw new FlexmigError(ErrorCode.ValidationFailed, `saga: ${key} is required`, { field: key });
    }
  }
  return {
    schema: 1,
    ref: { migrationId: ref.migrationId, vmId: ref.vmId, sourceHostId: ref.sourceHostId, targetHostId: ref.targetHostId },
    phase: 'created',
    policy: resolvePolicy(policy),
    createdAt: now,
    startedAt: null,
    endedAt: null,
    steps: STEPS.map(
      (d): StepState => ({
        step: d.number,
        name: d.name,
        status: 'pending',
        attempt: 0,
        startedAt: null,
        endedAt: null,
        completedAt: null,
        deadline: null,
        notBefore: null,
        inFlight: null,
        queries: 0,
        unreachableSince: null,
        dispatches: 0,
        lastError: null,
        result: null,
        compensation: null,
      }),
    ),
    cause: null,
    cancel: null,
    attention: null,
  };
}

/**
 * The next state. Pure: the input is never mutated; an event that does not apply (stale attempt, step
 * not running, terminal saga, refused cancel) returns the very same object, which is how callers (and
 * `decide`) know nothing happened.
 */
export function evolve(state: SagaState, event: SagaEvent, now: EpochMs): SagaState {
  if (isTerminal(state)) return state;
  const draft = copyJson(state);
  return apply(draft, event, now) ? draft : state;
}

/** Mutates the draft; returns false when the event does not apply (the draft is then discarded). */
function apply(s: SagaState, e: SagaEvent, now: EpochMs): boolean {
  switch (e.type) {
    case 'start':
      if (s.phase !== 'created') return false;
      s.phase = 'running';
      s.startedAt = now;
      issueStep(s, 1, 1, now, null);
      return true;

    case 'step-succeeded': {
      const st = runningStep(s, e.step, e.attempt);
      if (!st) return false;
      succeed(s, st, e.result ?? null, now);
      return true;
    }

    case 'step-failed': {
      const st = runningStep(s, e.step, e.attempt);
      if (!st) return false;
      fail(s, st, copyError(e.error), now, false);
      return true;
    }

    case 'step-timed-out': {
      const st = runningStep(s, e.step, e.attempt);
      if (!st) return false;
      const timeoutMs = s.policy.stepTimeoutMs[st.name];
      startQuery(
        s,
        st,
        now,
        st.inFlight === 'command'
          ? { code: ErrorCode.Timeout, message: `no reply to attempt ${st.attempt} of ${st.name} within ${timeoutMs} ms`, retryable: true }
          : { code: ErrorCode.Timeout, message: `no answer to query ${st.queries} about attempt ${st.attempt} of ${st.name}`, retryable: true },
      );
      return true;
    }

    case 'step-query-failed': {
      const st = runningStep(s, e.step, e.attempt);
      if (!st || st.inFlight !== 'query') return false;
      st.lastError = copyError(e.error);
      st.unreachableSince ??= now;
      if (now - st.unreachableSince >= s.policy.outcomeUnknownLimitMs) {
        // Nothing is known of this attempt, and nothing can be done safely without knowing: stop, say so.
        st.status = 'failed';
        st.endedAt = now;
        settle(st);
        s.cause ??= stepFailedCause(st, st.lastError, now);
        s.attention = { kind: 'outcome-unknown', step: st.step, error: st.lastError, since: st.unreachableSince, at: now };
        s.phase = 'failed-needs-attention';
        s.endedAt = now;
      } else {
        startQuery(s, st, now, st.lastError);
      }
      return true;
    }

    case 'step-outcome-resolved': {
      const st = runningStep(s, e.step, e.attempt);
      if (!st) return false;
      st.unreachableSince = null; // an answer, whatever it says
      switch (e.outcome) {
        case 'completed':
          succeed(s, st, e.result ?? null, now);
          return true;
        case 'failed':
          fail(
            s,
            st,
            e.error
              ? copyError(e.error)
              : { code: ErrorCode.AgentFailed, message: `the agent reports attempt ${st.attempt} of ${st.name} failed`, retryable: true },
            now,
            false,
          );
          return true;
        case 'not-started':
          // The agent has fenced this attempt (it will refuse it if it ever arrives): the next one is safe.
          // AGENT_FAILED, not UNAVAILABLE or TIMEOUT (which mean nobody answered): the agent answered, so
          // maxAttempts bounds this, not peerUnavailableRetryMs.
          fail(
            s,
            st,
            { code: ErrorCode.AgentFailed, message: `the agent never started attempt ${st.attempt} of ${st.name}`, retryable: true },
            now,
            true,
          );
          return true;
        case 'in-progress':
          // Only an answer to our question; while the command itself is awaited it tells nothing new.
          if (st.inFlight !== 'query') return false;
          st.queries += 1;
          st.notBefore = now + s.policy.inProgressPollMs;
          st.dispatches += 1;
          return true;
        default:
          return unknownOutcome(e.outcome);
      }
    }

    case 'compensation-succeeded': {
      const st = compensatingStep(s, e.step, e.attempt);
      if (!st || !st.compensation) return false;
      st.status = 'compensated';
      st.compensation.endedAt = now;
      st.compensation.notBefore = null;
      continueCompensation(s, now);
      return true;
    }

    case 'compensation-failed': {
      const st = compensatingStep(s, e.step, e.attempt);
      if (!st) return false;
      compensationFailed(s, st, copyError(e.error), now);
      return true;
    }

    case 'compensation-timed-out': {
      const st = compensatingStep(s, e.step, e.attempt);
      if (!st || !st.compensation) return false;
      compensationFailed(
        s,
        st,
        {
          code: ErrorCode.Timeout,
          message: `no reply to compensation ${stepDefinition(st.step).compensation} attempt ${st.compensation.attempt} within ${s.policy.compensationTimeoutMs} ms`,
          retryable: true,
        },
        now,
      );
      return true;
    }

    case 'cancel-requested': {
      if (!canCancel(s).ok) return false;
      const reason = String(e.reason ?? '');
      const by = String(e.by ?? '');
      s.cancel = { reason, by, at: now };
      if (s.phase === 'created') {
        // Nothing was done, nothing to undo.
        s.cause = { kind: 'cancelled', reason, by, at: now, duringStep: null };
        s.phase = 'cancelled';
        s.endedAt = now;
        for (const st of s.steps) st.status = 'skipped';
        return true;
      }
      // A step is in flight: its outcome is awaited (never guessed), then the completed steps are compensated
      // instead of issuing the next one. See advance() and fail().
      const running = s.steps.find((st) => st.status === 'running');
      s.cause ??= { kind: 'cancelled', reason, by, at: now, duringStep: running?.step ?? null };
      return true;
    }

    case 'resume-after-restart': {
      // Re-derived actions come from decide(); here only what must change: a command whose deadline passed
      // while no one was watching is resolved by asking, and a compensation gets a fresh deadline (it is idempotent).
      let changed = false;
      for (const st of s.steps) {
        if (st.status === 'running' && st.inFlight === 'command' && st.deadline !== null && st.deadline <= now) {
          startQuery(s, st, now, {
            code: ErrorCode.Timeout,
            message: `the deadline of attempt ${st.attempt} of ${st.name} passed while the scheduler was down`,
            retryable: true,
          });
          changed = true;
        }
        if (st.status === 'compensating' && st.compensation && st.compensation.deadline <= now) {
          st.compensation.deadline = now + s.policy.compensationTimeoutMs;
          st.compensation.notBefore = null;
          changed = true;
        }
      }
      return changed;
    }

    default:
      return unknownEvent(e);
  }
}

// --- forward -----------------------------------------------------------------------------------------------------------

function issueStep(s: SagaState, n: StepNumber, attempt: number, now: EpochMs, notBefore: EpochMs | null): void {
  const st = s.steps[n - 1];
  st.status = 'running';
  st.attempt = attempt;
  st.startedAt ??= now;
  st.endedAt = null;
  st.notBefore = notBefore;
  st.deadline = (notBefore ?? now) + s.policy.stepTimeoutMs[st.name];
  st.inFlight = 'command';
  st.queries = 0;
  st.unreachableSince = null;
  st.dispatches += 1;
}

function succeed(s: SagaState, st: StepState, result: JsonValue, now: EpochMs): void {
  st.status = 'completed';
  st.endedAt = now;
  st.completedAt = now;
  st.result = result;
  settle(st);
  let n = st.step;
  const name = stepDefinition(n).name;
  // the stream reached the switchover inside step 3 (a guest whose memory fits the budget after its first pass:
  // QEMU follows that pass with the pause at once) and the source agent recorded steps 4 and 5 done with it: both are completed here, in the same
  // transition, rather than a command, a reply and a commit of step 4's own inside the guest's downtime. Step 4
  // keeps step 3's figures (what was left at the switchover), and both are compensated like steps that ran.
  const pausedIn3 = pausedWithTransferMemory(name, result);
  if (pausedIn3 !== undefined && doneWith(s, SYNC_MEMORY, { ...figuresOf(result), pausedAt: pausedIn3, doneWith: TRANSFER_MEMORY }, now)) {
    n = SYNC_MEMORY;
    if (doneWith(s, PAUSE_SOURCE, { pausedAt: pausedIn3, doneWith: TRANSFER_MEMORY }, now)) n = PAUSE_SOURCE;
  }
  // the one reading of "step 4 ended with the guest paused" (libs/contracts), the agent's ledger's too
  const paused = pausedWithSyncMemory(name, result);
  // the source's guest stopped inside step 4 (QEMU's pre-switchover) and its agent recorded step 5 done
  // with it: step 5 is completed here, in the same transition, without a command or a round trip of its
  // own inside the guest's downtime. It is compensated (the source resumed) like a step 5 that ran.
  if (paused !== undefined && doneWith(s, PAUSE_SOURCE, { pausedAt: paused, doneWith: SYNC_MEMORY }, now)) n = PAUSE_SOURCE;
  // likewise step 7 in step 6: the target started the guest as soon as its state had loaded and its agent
  // recorded step 7 done with it (the target's half of the result, `target`). Past the point of no return:
  // from here only forward, whatever a cancel asked meanwhile.
  const resumed = resumedWithTransferState(name, targetHalf(result));
  if (resumed !== undefined && doneWith(s, POINT_OF_NO_RETURN, { resumedAt: resumed, doneWith: TRANSFER_STATE }, now)) {
    n = POINT_OF_NO_RETURN;
    // a cancel that waited for this step came too late: the guest runs on the target. It stays on record
    // (`cancel`), but it is not what the migration ended by.
    if (s.cause?.kind === 'cancelled') s.cause = null;
  }
  if (n < POINT_OF_NO_RETURN && s.cancel) {
    beginCompensation(s, now);
  } else if (n === STEPS.length) {
    s.phase = 'completed';
    s.endedAt = now;
  } else {
    issueStep(s, (n + 1) as StepNumber, 1, now, null);
  }
}

/** Step 2 (`transfer-config`): its compensation destroys the target's copy (nextToCompensate). */
const TRANSFER_CONFIG = 2 as const satisfies StepNumber;
/** Step 3 (`transfer-memory`): a step 3 that ends with the guest paused completes steps 4 and 5. */
const TRANSFER_MEMORY = 3 as const satisfies StepNumber;
/** Step 4 (`sync-memory`) and step 5 (`pause-source`): a step 4 that ends with the guest paused completes step 5. */
const SYNC_MEMORY = 4 as const satisfies StepNumber;
const PAUSE_SOURCE = 5 as const satisfies StepNumber;
/** Step 6 (`transfer-state`): a step 6 whose target half ends with the guest running completes step 7. */
const TRANSFER_STATE = 6 as const satisfies StepNumber;

/** One field of a step result that is an object; undefined otherwise. */
const fieldOf = (result: JsonValue, key: string): JsonValue | undefined =>
  result !== null && typeof result === 'object' && !Array.isArray(result) ? result[key] : undefined;

/** A step result's transfer figures (`stats`), when it has them, to keep on a step done with it. */
const figuresOf = (result: JsonValue): { stats?: JsonValue } => {
  const stats = fieldOf(result, 'stats');
  return stats === undefined ? {} : { stats };
};

/** The target's half of a step 6 result (StepExecutor: the source's reply with the target's as `target`). */
const targetHalf = (result: JsonValue): unknown => fieldOf(result, 'target');

/** Completes step `n`, never issued, as done along with the step before it (attempt 1); false when it was issued. */
function doneWith(s: SagaState, n: StepNumber, result: JsonValue, now: EpochMs): boolean {
  const st = s.steps[n - 1];
  if (st.status !== 'pending') return false;
  st.attempt = 1;
  st.startedAt = now;
  st.status = 'completed';
  st.endedAt = now;
  st.completedAt = now;
  st.result = result;
  settle(st);
  return true;
}

/** The agent answered for this attempt: failed, or (neverStarted) it never began and is now fenced. */
function fail(s: SagaState, st: StepState, error: StepError, now: EpochMs, neverStarted: boolean): void {
  st.lastError = error;
  settle(st);
  const n = st.step;
  if (n < POINT_OF_NO_RETURN) {
    if (s.cancel) {
      // Cancelled meanwhile: no retry; the cancel stays the cause.
      st.status = neverStarted ? 'pending' : 'failed'; // pending becomes skipped below
      if (!neverStarted) st.endedAt = now;
      beginCompensation(s, now);
    } else if (error.retryable && (st.attempt < s.policy.maxAttempts || peerMayComeBack(s, st, error, now))) {
      retry(s, st, now);
    } else {
      st.status = 'failed';
      st.endedAt = now;
      s.cause ??= stepFailedCause(st, error, now);
      beginCompensation(s, now);
    }
  } else if (n === POINT_OF_NO_RETURN) {
    // The source is paused and step 7 was sent: the source must never be resumed by us. Retry (the target
    // resume is idempotent); when it cannot finish, stop and call a human rather than guess.
    if (error.retryable && st.attempt < s.policy.maxResumeTargetAttempts) {
      retry(s, st, now);
    } else {
      st.status = 'failed';
      st.endedAt = now;
      s.cause ??= stepFailedCause(st, error, now);
      s.attention = { kind: 'resume-target-failed', step: POINT_OF_NO_RETURN, error, at: now };
      s.phase = 'failed-needs-attention';
      s.endedAt = now;
    }
  } else if (error.retryable && st.attempt < s.policy.maxFinishAttempts) {
    // Steps 8–9: the VM already runs on the target; only forward.
    retry(s, st, now);
  } else {
    // ...but not forever: a permanent error, or one that outlasted the attempts, is for a human.
    st.status = 'failed';
    st.endedAt = now;
    s.cause ??= stepFailedCause(st, error, now);
    s.attention = { kind: 'finish-failed', step: st.step, error, at: now };
    s.phase = 'failed-needs-attention';
    s.endedAt = now;
  }
}

/**
 * The step failed because the agent on the other end does not answer (UNAVAILABLE): it may be restarting,
 * so the step is retried past maxAttempts while within peerUnavailableRetryMs of its first attempt.
 */
function peerMayComeBack(s: SagaState, st: StepState, error: StepError, now: EpochMs): boolean {
  if (error.code !== ErrorCode.Unavailable || st.startedAt === null) return false;
  return now - st.startedAt < (s.policy.peerUnavailableRetryMs ?? defaultPeerUnavailableRetryMs);
}

function retry(s: SagaState, st: StepState, now: EpochMs): void {
  const next = st.attempt + 1;
  issueStep(s, st.step, next, now, now + backoffDelayMs(s.policy.backoff, next - 1));
}

/** The outcome of the current attempt is unknown: ask the agent (first question at once, then backing off). */
function startQuery(s: SagaState, st: StepState, now: EpochMs, error: StepError): void {
  st.lastError = error;
  st.inFlight = 'query';
  st.queries += 1;
  st.deadline = null;
  st.notBefore = st.queries === 1 ? null : now + backoffDelayMs(s.policy.backoff, st.queries - 1);
  st.dispatches += 1;
}

function settle(st: StepState): void {
  st.inFlight = null;
  st.deadline = null;
  st.notBefore = null;
}

function stepFailedCause(st: StepState, error: StepError, now: EpochMs): SagaState['cause'] {
  return { kind: 'step-failed', step: st.step, name: st.name, reason: error.message, error, attempts: st.attempt, at: now };
}

// --- compensation ------------------------------------------------------------------------------------------------------

function beginCompensation(s: SagaState, now: EpochMs): void {
  s.phase = 'compensating';
  for (const st of s.steps) if (st.status === 'pending') st.status = 'skipped';
  continueCompensation(s, now);
}

/** Undo the next step (nextToCompensate); when none is left, finish. */
function continueCompensation(s: SagaState, now: EpochMs): void {
  const next = nextToCompensate(s);
  if (!next) {
    s.phase = s.cause?.kind === 'cancelled' ? 'cancelled' : 'rolled-back';
    s.endedAt = now;
    return;
  }
  issueCompensation(s, next, 1, now, null);
}

/**
 * The next step to undo: the highest completed step that has a compensation (reverse order), with one
 * exception. Once step 6 was sent, the target may hold the guest's whole state, and may have started it
 * (step 7 inside step 6 on qemu, or an agent that died after `cont`), while the saga only knows the step
 * failed. So the target's copy goes first: step 6's compensation when it completed (the target's half, then
 * the source's), else step 2's, before steps 5, 4 and 3, which resume the source. A copy that ran refuses to
 * be destroyed, and the rollback stops there with the source still paused (failed-needs-attention), never
 * with two running copies (fault matrix: qemu:kill-target-agent@transfer-state, 2026-12-04).
 */
export function nextToCompensate(s: SagaState): StepState | null {
  const six = s.steps[TRANSFER_STATE - 1];
  if (six.attempt > 0 && six.status !== 'compensated') {
    if (six.status === 'completed') return six;
    const two = s.steps[TRANSFER_CONFIG - 1];
    if (two.status === 'completed') return two;
  }
  for (let i = POINT_OF_NO_RETURN - 2; i >= 0; i--) {
    const st = s.steps[i];
    if (st.status === 'completed' && stepDefinition(st.step).compensation !== null) return st;
  }
  return null;
}

function issueCompensation(s: SagaState, st: StepState, attempt: number, now: EpochMs, notBefore: EpochMs | null): void {
  st.status = 'compensating';
  st.compensation = {
    attempt,
    startedAt: st.compensation?.startedAt ?? now,
    endedAt: null,
    deadline: (notBefore ?? now) + s.policy.compensationTimeoutMs,
    notBefore,
    lastError: st.compensation?.lastError ?? null,
    unreachableSince: st.compensation?.unreachableSince ?? null,
  };
  st.dispatches += 1;
}

/**
 * Nobody answered, or no reply came in time: the agent is restarting or cut off, and its compensation
 * (idempotent) has most likely not run. Anything else is the agent's own answer.
 */
const agentUnreachable = (e: StepError): boolean => e.code === ErrorCode.Unavailable || e.code === ErrorCode.Timeout;

function compensationFailed(s: SagaState, st: StepState, error: StepError, now: EpochMs): void {
  const comp = st.compensation!;
  comp.lastError = error;
  // An agent that answers gets maxCompensationAttempts. One that cannot be reached (a target agent
  // restarting while the VM already runs on the source again) is waited for like a step whose outcome is
  // unknown: its copy would otherwise be left behind for good after a few seconds of silence.
  comp.unreachableSince = agentUnreachable(error) ? (comp.unreachableSince ?? now) : null;
  const waitingForAgent = comp.unreachableSince !== null && now - comp.unreachableSince < s.policy.outcomeUnknownLimitMs;
  if (error.retryable && (comp.attempt < s.policy.maxCompensationAttempts || waitingForAgent)) {
    const next = comp.attempt + 1;
    issueCompensation(s, st, next, now, now + backoffDelayMs(s.policy.backoff, next - 1));
    return;
  }
  // Stop here: the remaining compensations assume this one happened (it is an undo stack). The first
  // cause stays in `cause`; this goes to `attention`.
  st.status = 'compensation-failed';
  comp.endedAt = now;
  comp.notBefore = null;
  s.attention = {
    kind: 'compensation-failed',
    step: st.step,
    name: st.name,
    error,
    at: now,
    uncompensatedSteps: s.steps.filter((x) => x.status === 'completed').map((x) => x.step),
  };
  s.phase = 'failed-needs-attention';
  s.endedAt = now;
}

// --- guards ------------------------------------------------------------------------------------------------------------

function runningStep(s: SagaState, step: unknown, attempt: unknown): StepState | null {
  if (s.phase !== 'running' || !isStepNumber(step)) return null;
  const st = s.steps[step - 1];
  return st.status === 'running' && st.attempt === attempt ? st : null;
}

function compensatingStep(s: SagaState, step: unknown, attempt: unknown): StepState | null {
  if (s.phase !== 'compensating' || !isStepNumber(step)) return null;
  const st = s.steps[step - 1];
  if (st.status !== 'compensating' || !st.compensation) return null;
  if (attempt !== undefined && attempt !== st.compensation.attempt) return null;
  return st;
}

function copyError(e: StepError): StepError {
  return { code: String(e?.code ?? ErrorCode.Internal), message: String(e?.message ?? ''), retryable: e?.retryable === true };
}

function unknownEvent(e: never): never {
  throw new FlexmigError(ErrorCode.MalformedMessage, `saga: unknown event type ${JSON.stringify((e as { type?: unknown })?.type)}`);
}

function unknownOutcome(o: never): never {
  throw new FlexmigError(ErrorCode.MalformedMessage, `saga: unknown step outcome ${JSON.stringify(o)}`);
}
