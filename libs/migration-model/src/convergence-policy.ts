/**
 * The convergence policy: between two passes, given what the passes so far looked like, what should
 * the migration do? A pure function (`decideConvergence(history, policy, elapsedMs)`), so the sim
 * driver, the QEMU driver and the tests all use the same rules. README.md § "Policy rules" lists them.
 *
 * Rules, first match wins:
 *   0. The last pass fits its downtime limit          → continue (the switchover is happening).
 *   1. Completion timeout (completionTimeoutPerGiBSec × memory GiB) reached
 *                                                      → switch-to-postcopy if allowed, else abort COMPLETION_TIMEOUT
 *                                                        (KubeVirt: allowPostCopy turns the timeout into post-copy).
 *   2. No decrease of the remaining for progressTimeoutSec (or longer) → abort PROGRESS_TIMEOUT (KubeVirt).
 *   3. Not converging and auto-converge allowed and the throttle below its maximum
 *                                                      → throttle: initial, then +increment (QEMU).
 *   4. A Nova downtime step is due                     → raise-downtime to the scheduled limit.
 *   5. Post-copy allowed and either (a) not converging with throttle maxed or not allowed and no
 *      downtime step left to wait for, or (b) the completion timeout is near (the next pass, as long as
 *      the last one, would cross it)                  → switch-to-postcopy.
 *   6. Otherwise                                       → continue.
 *
 * "Not converging" is QEMU's auto-converge trigger (`migration_trigger_throttle`): a pass is a hit
 * when the bytes the guest dirtied during it (= the remaining at its end, in the model) exceed
 * throttleTriggerThresholdPct (50%) of the bytes it sent. Two consecutive hits start throttling; once
 * throttled, each further hit counts. (QEMU 7.2 resets its counter after each throttle step, so it
 * needs two hits per step; the per-pass rule here follows reference/qemu-migration.md §2 and is
 * one step faster. Both reach 99% in a handful of passes.)
 */
import { BYTES_PER_GIB, MS_PER_SEC, QEMU_THROTTLE_TRIGGER_COUNT } from './constants';
import { type PassSample, fitsDowntimeBudget } from './precopy-model';
import type { MigrationPolicy } from './schemas';

/** Stable codes of the policy's aborts: callers branch on these, never on the reason text. */
export const ConvergenceAbortCode = {
  CompletionTimeout: 'COMPLETION_TIMEOUT',
  ProgressTimeout: 'PROGRESS_TIMEOUT',
} as const;
export type ConvergenceAbortCode = (typeof ConvergenceAbortCode)[keyof typeof ConvergenceAbortCode];

export type Decision =
  | { action: 'continue'; reason: string }
  | { action: 'throttle'; percent: number; reason: string }
  | { action: 'raise-downtime'; downtimeLimitMs: number; reason: string }
  | { action: 'switch-to-postcopy'; reason: string }
  | { action: 'abort'; code: ConvergenceAbortCode; reason: string };
export type DecisionAction = Decision['action'];

// ---- the figures the rules use (exported: the scheduler shows them, the tests pin them) -------------

/** KubeVirt's completion timeout: completionTimeoutPerGiBSec × memory in GiB (not rounded), in ms. */
export function completionTimeoutMs(policy: Pick<MigrationPolicy, 'completionTimeoutPerGiBSec' | 'memoryBytes'>): number {
  return policy.completionTimeoutPerGiBSec * (policy.memoryBytes / BYTES_PER_GIB) * MS_PER_SEC;
}

export interface DowntimeStep {
  /** ms since the migration started from which this limit applies. */
  atMs: number;
  downtimeLimitMs: number;
}

/**
 * Nova's downtime steps (`nova/virt/libvirt/migration.py` `downtime_steps`), with an explicit start:
 * step i of n (i = 0..n) applies from i × delayPerGiBSec × memory GiB seconds and sets the limit to
 * downtimeLimitMs + (maxDowntimeLimitMs − downtimeLimitMs) × i / n, rounded to a whole ms. Without
 * steps the schedule is the single initial limit.
 */
export function downtimeSchedule(policy: MigrationPolicy): DowntimeStep[] {
  const { downtimeSteps, maxDowntimeLimitMs, downtimeLimitMs } = policy;
  if (!downtimeSteps || maxDowntimeLimitMs === undefined || maxDowntimeLimitMs <= downtimeLimitMs) {
    return [{ atMs: 0, downtimeLimitMs }];
  }
  const stepDelayMs = downtimeSteps.delayPerGiBSec * (policy.memoryBytes / BYTES_PER_GIB) * MS_PER_SEC;
  const n = downtimeSteps.steps;
  return Array.from({ length: n + 1 }, (_, i) => ({
    atMs: i * stepDelayMs,
    downtimeLimitMs: Math.round(downtimeLimitMs + ((maxDowntimeLimitMs - downtimeLimitMs) * i) / n),
  }));
}

/** The downtime limit the schedule prescribes at `elapsedMs`. */
export function scheduledDowntimeLimitMs(policy: MigrationPolicy, elapsedMs: number): number {
  let limit = policy.downtimeLimitMs;
  for (const step of downtimeSchedule(policy)) if (step.atMs <= elapsedMs) limit = step.downtimeLimitMs;
  return limit;
}

/** QEMU's trigger for one pass: dirtied during it (= remaining at its end) > threshold % of what it sent. */
export function isNonConvergingPass(sample: PassSample, thresholdPct: number): boolean {
  return sample.remainingBytes > (sample.bytesSent * thresholdPct) / 100;
}

/** How many of the latest passes, counted back from the last, are non-converging hits. */
export function trailingNonConvergingPasses(history: readonly PassSample[], thresholdPct: number): number {
  let n = 0;
  for (let i = history.length - 1; i >= 0 && isNonConvergingPass(history[i]!, thresholdPct); i -= 1) n += 1;
  return n;
}

/**
 * When the remaining last decreased: the end of the last pass that set a new minimum (the start, with
 * all of memory remaining, counts as the first minimum). Pass granularity: the model and QEMU's
 * MIGRATION_PASS both report per pass.
 */
export function lastProgressMs(history: readonly PassSample[], memoryBytes: number): number {
  let min = memoryBytes;
  let at = 0;
  for (const s of history) {
    if (s.remainingBytes < min) {
      min = s.remainingBytes;
      at = s.endMs;
    }
  }
  return at;
}

// ---- the decision ------------------------------------------------------------------------------------

/**
 * What to do now, `elapsedMs` after the migration started (the clock of the samples' startMs/endMs).
 * `history` holds the completed passes, oldest first; the throttle and downtime limit currently in
 * effect are read from the last sample. Idempotent: asking twice at the same point gives the same answer.
 */
export function decideConvergence(history: readonly PassSample[], policy: MigrationPolicy, elapsedMs: number): Decision {
  const last = history[history.length - 1];
  const timeoutMs = completionTimeoutMs(policy);
  const elapsed = `${sec(elapsedMs)} s`;

  // 0. converged: nothing to decide
  if (last && fitsDowntimeBudget(last.remainingBytes, last.bandwidthBytesPerSec, last.downtimeLimitMs)) {
    return {
      action: 'continue',
      reason: `pass ${last.pass} left ${mib(last.remainingBytes)} MiB, ${ms(last.expectedDowntimeMs)} ms of downtime, within the ${last.downtimeLimitMs} ms limit: switching over`,
    };
  }

  // 1. completion timeout
  if (elapsedMs >= timeoutMs) {
    const why = `${elapsed} elapsed reached the completion timeout of ${sec(timeoutMs)} s (${policy.completionTimeoutPerGiBSec} s/GiB × ${gib(policy.memoryBytes)} GiB)`;
    return policy.postCopy
      ? { action: 'switch-to-postcopy', reason: `${why}; post-copy is allowed, so switching to it instead of aborting` }
      : { action: 'abort', code: ConvergenceAbortCode.CompletionTimeout, reason: `${why} without converging` };
  }

  // Before the first pass ends nothing else can be judged: pass 1 sends fresh memory, which is progress.
  if (!last) {
    return { action: 'continue', reason: `pass 1 in progress at ${elapsed}` };
  }

  // 2. progress timeout
  const progressAt = lastProgressMs(history, policy.memoryBytes);
  const progressTimeoutMs = policy.progressTimeoutSec * MS_PER_SEC;
  if (elapsedMs - progressAt >= progressTimeoutMs) {
    return {
      action: 'abort',
      code: ConvergenceAbortCode.ProgressTimeout,
      reason: `the remaining (${mib(last.remainingBytes)} MiB) has not decreased since ${sec(progressAt)} s, longer than the progress timeout of ${policy.progressTimeoutSec} s`,
    };
  }

  const hits = trailingNonConvergingPasses(history, policy.throttleTriggerThresholdPct);
  const throttled = last.throttlePct > 0;
  const notConverging = hits >= QEMU_THROTTLE_TRIGGER_COUNT || (throttled && hits >= 1);
  const symptom = `the guest dirtied more than ${policy.throttleTriggerThresholdPct}% of what was sent in ${hits} pass(es) in a row (last: ${mib(last.remainingBytes)} MiB dirtied, ${mib(last.bytesSent)} MiB sent)`;

  // 3. auto-converge throttle
  const throttleAllowed = policy.autoConverge && last.throttlePct < policy.maxThrottlePct;
  if (notConverging && throttleAllowed) {
    const percent = throttled
      ? Math.min(policy.maxThrottlePct, last.throttlePct + policy.throttleIncrementPct)
      : policy.throttleInitialPct;
    return {
      action: 'throttle',
      percent,
      reason: throttled
        ? `still not converging at ${last.throttlePct}% throttle: ${symptom}; raising the throttle by ${policy.throttleIncrementPct} to ${percent}%`
        : `not converging: ${symptom}; starting auto-converge at ${percent}%`,
    };
  }

  // 4. downtime steps
  const currentLimit = last.downtimeLimitMs;
  const scheduled = scheduledDowntimeLimitMs(policy, elapsedMs);
  if (scheduled > currentLimit) {
    return {
      action: 'raise-downtime',
      downtimeLimitMs: scheduled,
      reason: `downtime step due at ${elapsed}: raising the limit from ${currentLimit} ms to ${scheduled} ms (last pass needed ${ms(last.expectedDowntimeMs)} ms)`,
    };
  }

  // 5. post-copy
  const throttleExhausted = !policy.autoConverge || last.throttlePct >= policy.maxThrottlePct;
  const finalLimit = downtimeSchedule(policy).at(-1)!.downtimeLimitMs;
  const stepsExhausted = currentLimit >= finalLimit;
  const lastPassMs = last.endMs - last.startMs;
  const timeoutNear = elapsedMs + lastPassMs >= timeoutMs;
  if (policy.postCopy) {
    if (notConverging && throttleExhausted && stepsExhausted) {
      const lever = policy.autoConverge ? `the throttle is at its maximum (${last.throttlePct}%)` : 'auto-converge is off';
      return {
        action: 'switch-to-postcopy',
        reason: `not converging: ${symptom}; ${lever} and no downtime step is left: switching to post-copy`,
      };
    }
    if (timeoutNear) {
      return {
        action: 'switch-to-postcopy',
        reason: `the completion timeout (${sec(timeoutMs)} s) is near: ${elapsed} elapsed and the last pass took ${sec(lastPassMs)} s; switching to post-copy rather than aborting`,
      };
    }
  }

  // 6. continue
  if (!notConverging) {
    return {
      action: 'continue',
      reason: `pass ${last.pass} left ${mib(last.remainingBytes)} MiB (${ms(last.expectedDowntimeMs)} ms at the current bandwidth, limit ${currentLimit} ms); ${hits === 0 ? 'converging' : `${hits} non-converging pass(es), watching`}`,
    };
  }
  const waitingFor = !stepsExhausted
    ? `the next downtime step (limit ${finalLimit} ms at most)`
    : `the completion timeout at ${sec(timeoutMs)} s`;
  return {
    action: 'continue',
    reason: `not converging: ${symptom}; no lever to pull now (${throttleExhausted ? 'throttle maxed or off' : 'throttle available'}, post-copy ${policy.postCopy ? 'allowed' : 'not allowed'}); waiting for ${waitingFor}`,
  };
}

const mib = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);
const gib = (bytes: number) => Number((bytes / BYTES_PER_GIB).toFixed(3)).toString();
const sec = (msValue: number) => Number((msValue / MS_PER_SEC).toFixed(1)).toString();
const ms = (value: number) => Math.round(value).toString();
