import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { STEPS, type StepName } from './steps';
import type { BackoffPolicy, SagaPolicy, SagaPolicyInput } from './types';

/** Attempts per step before a migration is rolled back: a third transient failure is not transient. */
export const defaultMaxAttempts = 3;
/**
 * Attempts of step 7 before a human is called. Every second here is guest downtime and the source may
 * not be resumed, so retrying long buys nothing: 5 attempts with the default backoff is ~15 s of waiting.
 */
export const defaultMaxResumeTargetAttempts = 5;
/** Attempts per compensation (they are idempotent) before escalating. */
export const defaultMaxCompensationAttempts = 3;
/**
 * Attempts of steps 8–9 before a human is called: the VM already runs on the target, so a transient
 * fault (an agent restarting) deserves many tries; with the default backoff 10 attempts wait ~8 minutes.
 */
export const defaultMaxFinishAttempts = 10;
/**
 * How long steps 1–6 keep being retried while the agent on the other end does not answer (UNAVAILABLE),
 * beyond `maxAttempts`: an agent restarted by its supervisor is back within this, a rebooting host is not
 * (the migration then rolls back, and the VM keeps running on its source).
 */
export const defaultPeerUnavailableRetryMs = 60_000;
/**
 * How long an agent may stay unreachable while a step's outcome is unknown: long enough for a host to
 * reboot (KubeVirt's default progress timeout is 150 s; a bare-metal reboot takes several minutes).
 */
export const defaultOutcomeUnknownLimitMs = 15 * 60_000;
/** Per-attempt timeout of a compensation: each is a single idempotent agent call (destroy, resume, release). */
export const defaultCompensationTimeoutMs = 60_000;
/** Poll interval while an agent reports a step `in-progress` (long memory copies report this way). */
export const defaultInProgressPollMs = 5_000;
/** 1 s, 2 s, 4 s … capped at 60 s: steps 8–9 and the queries of an unreachable agent retry for minutes. */
export const defaultBackoff: BackoffPolicy = { initialMs: 1_000, multiplier: 2, maxMs: 60_000 };

export const defaultStepTimeoutsMs = (): Record<StepName, number> =>
  Object.fromEntries(STEPS.map((d) => [d.name, d.defaultTimeoutMs])) as Record<StepName, number>;

export const DEFAULT_POLICY: SagaPolicy = Object.freeze({
  maxAttempts: defaultMaxAttempts,
  maxResumeTargetAttempts: defaultMaxResumeTargetAttempts,
  maxCompensationAttempts: defaultMaxCompensationAttempts,
  maxFinishAttempts: defaultMaxFinishAttempts,
  outcomeUnknownLimitMs: defaultOutcomeUnknownLimitMs,
  peerUnavailableRetryMs: defaultPeerUnavailableRetryMs,
  stepTimeoutMs: defaultStepTimeoutsMs(),
  compensationTimeoutMs: defaultCompensationTimeoutMs,
  inProgressPollMs: defaultInProgressPollMs,
  backoff: defaultBackoff,
});

const positiveInt = (what: string, v: number): void => {
  if (!Number.isInteger(v) || v < 1) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `saga policy: ${what} must be a positive integer, got ${v}`, { field: what });
  }
};

/** Merges an override with the defaults and checks it; throws VALIDATION_FAILED naming the bad field. */
export function resolvePolicy(input: SagaPolicyInput = {}): SagaPolicy {
  const policy: SagaPolicy = {
    maxAttempts: input.maxAttempts ?? DEFAULT_POLICY.maxAttempts,
    maxResumeTargetAttempts: input.maxResumeTargetAttempts ?? DEFAULT_POLICY.maxResumeTargetAttempts,
    maxCompensationAttempts: input.maxCompensationAttempts ?? DEFAULT_POLICY.maxCompensationAttempts,
    maxFinishAttempts: input.maxFinishAttempts ?? DEFAULT_POLICY.maxFinishAttempts,
    outcomeUnknownLimitMs: input.outcomeUnknownLimitMs ?? DEFAULT_POLICY.outcomeUnknownLimitMs,
    peerUnavailableRetryMs: input.peerUnavailableRetryMs ?? defaultPeerUnavailableRetryMs,
    stepTimeoutMs: { ...DEFAULT_POLICY.stepTimeoutMs, ...input.stepTimeoutMs },
    compensationTimeoutMs: input.compensationTimeoutMs ?? DEFAULT_POLICY.compensationTimeoutMs,
    inProgressPollMs: input.inProgressPollMs ?? DEFAULT_POLICY.inProgressPollMs,
    backoff: { ...DEFAULT_POLICY.backoff, ...input.backoff },
  };
  positiveInt('maxAttempts', policy.maxAttempts);
  positiveInt('maxResumeTargetAttempts', policy.maxResumeTargetAttempts);
  positiveInt('maxCompensationAttempts', policy.maxCompensationAttempts);
  positiveInt('maxFinishAttempts', policy.maxFinishAttempts);
  positiveInt('outcomeUnknownLimitMs', policy.outcomeUnknownLimitMs);
  positiveInt('peerUnavailableRetryMs', policy.peerUnavailableRetryMs!);
  positiveInt('compensationTimeoutMs', policy.compensationTimeoutMs);
  positiveInt('inProgressPollMs', policy.inProgressPollMs);
  positiveInt('backoff.initialMs', policy.backoff.initialMs);
  positiveInt('backoff.maxMs', policy.backoff.maxMs);
  if (!(policy.backoff.multiplier >= 1)) {
    throw new FlexmigError(ErrorCode.ValidationFailed, 'saga policy: backoff.multiplier must be >= 1', { field: 'backoff.multiplier' });
  }
  for (const d of STEPS) positiveInt(`stepTimeoutMs.${d.name}`, policy.stepTimeoutMs[d.name]);
  return policy;
}
