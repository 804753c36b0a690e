/**
 * The bridge between the wire policy (`@flexmig/contracts` MigrationPolicy, what the scheduler sends
 * with every step) and the model's policy (`@flexmig/migration-model`, what `decideConvergence`
 * reads), the checks that say waiting longer is pointless, and the errors a failed convergence turns
 * into. Shared by the drivers: the sim driver steers a model, the QEMU driver's transfer monitor steers
 * with the same policy from `query-migrate` samples, and both give up with the same words.
 */
import { ErrorCode, FlexmigError, MigrationPolicy as WirePolicy } from '@flexmig/contracts';
import {
  BYTES_PER_MIB,
  type ConvergenceAbortCode,
  type MigrationPolicy as ModelPolicy,
  type PrecopyParams,
  QEMU_THROTTLE_TRIGGER_COUNT,
  cannotConverge,
  downtimeSchedule,
  expectedDowntimeMs,
  remainingLimitBytes,
  resolveMigrationPolicy,
  trailingNonConvergingPasses,
  type PassSample,
} from '@flexmig/migration-model';

/** Why a memory transfer failed: the model's policy codes plus the driver's own verdict. */
export const ConvergenceFailureCode = {
  CompletionTimeout: 'COMPLETION_TIMEOUT',
  ProgressTimeout: 'PROGRESS_TIMEOUT',
  /** The remaining can never fit the budget and no lever of the policy is left (or maxPasses ran out). */
  NotConverging: 'NOT_CONVERGING',
  /** cancelTransfer (compensation of steps 3/4) or the driver closing. */
  Cancelled: 'CANCELLED',
} as const;
export type ConvergenceFailureCode = (typeof ConvergenceFailureCode)[keyof typeof ConvergenceFailureCode];

/**
 * The model's policy for one migration: the wire fields as they are (the wire has no throttle tuning
 * and no Nova steps, so those take QEMU's / no defaults), plus the guest's memory, which the per-GiB
 * completion timeout needs.
 */
export function modelPolicyFor(wire: WirePolicy, memoryBytes: number): ModelPolicy {
  return resolveMigrationPolicy({
    downtimeLimitMs: wire.downtimeLimitMs,
    ...(wire.bandwidthMiBps ? { bandwidthMiBps: wire.bandwidthMiBps } : {}),
    completionTimeoutPerGiBSec: wire.completionTimeoutPerGiBSec,
    progressTimeoutSec: wire.progressTimeoutSec,
    autoConverge: wire.autoConverge,
    postCopy: wire.postCopy,
    memoryBytes: Math.round(memoryBytes),
  });
}

/**
 * A lever of the policy that may still make the guest converge: post-copy, auto-converge below its
 * maximum throttle, or a downtime step still to come. Without one, a guest that keeps failing QEMU's
 * convergence test will not converge by waiting.
 */
export function leverLeft(policy: ModelPolicy, throttlePct: number, downtimeLimitMs: number): boolean {
  if (policy.postCopy) return true;
  if (policy.autoConverge && throttlePct < policy.maxThrottlePct) return true;
  return downtimeSchedule(policy).at(-1)!.downtimeLimitMs > downtimeLimitMs;
}

/** The reason of a NOT_CONVERGING failure without a lever: what was seen, then the lever that is missing. */
export function noLeverReason(symptom: string, policy: ModelPolicy, throttlePct: number): string {
  return policy.autoConverge ? `${symptom} even at the maximum throttle of ${throttlePct}%` : `${symptom} and auto-converge is not allowed by the policy`;
}

/**
 * True when waiting longer is pointless: the guest keeps failing QEMU's convergence test, the model
 * says the remaining can never fit the budget at the current throttle and limit, and the policy has no
 * lever left (auto-converge off or at its maximum, no post-copy, no downtime step to come). The
 * policy alone (KubeVirt's rules) would keep copying until the completion timeout; a simulator knows
 * the outcome and says so at once, with the figures. Post-copy is left to `decideConvergence`.
 */
export function stalledWithoutLever(history: readonly PassSample[], params: PrecopyParams, policy: ModelPolicy, throttlePct: number, downtimeLimitMs: number): boolean {
  if (history.length === 0 || leverLeft(policy, throttlePct, downtimeLimitMs)) return false;
  const hits = trailingNonConvergingPasses(history, policy.throttleTriggerThresholdPct);
  const notConverging = hits >= QEMU_THROTTLE_TRIGGER_COUNT || (throttlePct > 0 && hits >= 1);
  return notConverging && cannotConverge(params, throttlePct, downtimeLimitMs);
}

/**
 * The same verdict from measured passes (QEMU, no model to ask): how many passes in a row, up to the
 * last, failed QEMU's convergence test. With auto-converge only the passes run at the maximum throttle
 * count: before that the throttle is a lever still at work.
 */
export function passesNotConverging(history: readonly PassSample[], policy: ModelPolicy): number {
  const counted = policy.autoConverge ? history.filter((p) => p.throttlePct >= policy.maxThrottlePct).length : history.length;
  return Math.min(trailingNonConvergingPasses(history, policy.throttleTriggerThresholdPct), counted);
}

/** The figures behind a failure: the model's (sim driver), or what QEMU measured (qemu driver). */
export type ConvergenceFigures =
  | {
      kind: 'model';
      params: PrecopyParams;
      /** Link speed of this host (the cap, if any, is in the policy). */
      linkBytesPerSec: number;
    }
  | {
      kind: 'measured';
      dirtyRateBytesPerSec: number;
      bandwidthBytesPerSec: number;
      /** QEMU's expected downtime for what remains, ms. */
      expectedDowntimeMs: number;
    };

export interface ConvergenceFailureFacts {
  vmId: string;
  migrationId: string;
  code: Exclude<ConvergenceFailureCode, 'CANCELLED'> | ConvergenceAbortCode;
  /** What the policy or the driver said, in words. */
  reason: string;
  figures: ConvergenceFigures;
  policy: ModelPolicy;
  passes: number;
  elapsedMs: number;
  remainingBytes: number;
  throttlePct: number;
  downtimeLimitMs: number;
}

/**
 * The error of a memory transfer that gave up: what failed, why (with the figures), what to do. The
 * stable code travels in `details.code`; the VM keeps running on the source.
 */
export function convergenceFailure(f: ConvergenceFailureFacts): FlexmigError {
  const mib = (bytes: number) => Math.round(bytes / BYTES_PER_MIB);
  const stalled = f.code === ConvergenceFailureCode.NotConverging;
  const g = guestFigures(f, stalled);
  const what =
    f.code === ConvergenceFailureCode.CompletionTimeout
      ? 'did not complete within its completion timeout'
      : f.code === ConvergenceFailureCode.ProgressTimeout
        ? 'made no progress within its progress timeout'
        : 'cannot converge';
  const advice: string[] = [];
  if (!f.policy.autoConverge) advice.push('allow auto-converge');
  else if (f.throttlePct < f.policy.maxThrottlePct) advice.push('give auto-converge more time (raise completionTimeoutPerGiBSec)');
  if (!f.policy.postCopy) advice.push('allow post-copy');
  const cap = f.policy.bandwidthMiBps;
  if (cap && (g.linkBytesPerSec === undefined || cap * BYTES_PER_MIB < g.linkBytesPerSec)) {
    advice.push(`raise or lift the bandwidth cap (${cap} MiB/s${g.linkBytesPerSec === undefined ? '' : ` on a ${mib(g.linkBytesPerSec)} MiB/s link`})`);
  }
  advice.push(`raise the downtime limit (the guest needs about ${Math.round(g.neededDowntimeMs)} ms, the limit is ${Math.round(f.downtimeLimitMs)} ms)`);
  advice.push('or migrate when the guest writes less memory');
  const about = [...(g.workingSetBytes !== undefined ? [`working set ${mib(g.workingSetBytes)} MiB`] : []), ...(f.throttlePct ? [`throttled ${f.throttlePct}%`] : [])];
  const message =
    `the memory transfer of VM ${f.vmId} (migration ${f.migrationId}) ${what} after ${f.passes} pass(es) and ` +
    `${(f.elapsedMs / 1000).toFixed(1)} s: ${f.reason}. ` +
    `The guest dirties ${mib(g.dirtyRateBytesPerSec)} MiB/s${about.length ? ` (${about.join(', ')})` : ''} ` +
    `against ${mib(g.bandwidthBytesPerSec)} MiB/s of migration bandwidth, ${g.dirty}. ` +
    `The stream was cancelled and the VM keeps running on the source. To migrate it: ${advice.join(', ')}.`;
  return new FlexmigError(
    stalled ? ErrorCode.Conflict : ErrorCode.Timeout,
    message,
    {
      code: f.code,
      passes: f.passes,
      elapsedMs: Math.round(f.elapsedMs),
      remainingBytes: Math.round(f.remainingBytes),
      throttlePct: f.throttlePct,
      downtimeLimitMs: f.downtimeLimitMs,
      dirtyRateBytesPerSec: g.dirtyRateBytesPerSec,
      bandwidthBytesPerSec: g.bandwidthBytesPerSec,
    },
    // the same migration with the same policy fails the same way: a retry needs a change first
    false,
  );
}

/** The guest's figures for the message, from the model or from QEMU's measurements. */
function guestFigures(f: ConvergenceFailureFacts, stalled: boolean) {
  const mib = (bytes: number) => Math.round(bytes / BYTES_PER_MIB);
  if (f.figures.kind === 'measured') {
    const m = f.figures;
    return { dirtyRateBytesPerSec: m.dirtyRateBytesPerSec, bandwidthBytesPerSec: m.bandwidthBytesPerSec, neededDowntimeMs: m.expectedDowntimeMs, dirty: `and ${mib(f.remainingBytes)} MiB were still dirty` };
  }
  const p = f.figures.params;
  const settled = remainingLimitBytes(p, f.throttlePct);
  return {
    dirtyRateBytesPerSec: p.dirtyRateBytesPerSec,
    bandwidthBytesPerSec: p.bandwidthBytesPerSec,
    workingSetBytes: p.workingSetBytes,
    linkBytesPerSec: f.figures.linkBytesPerSec,
    // a stall is about where the remaining settles; a timeout about where it still was
    neededDowntimeMs: expectedDowntimeMs(stalled ? settled : f.remainingBytes, p.bandwidthBytesPerSec),
    dirty: stalled ? `so about ${mib(settled)} MiB stay dirty` : `and ${mib(f.remainingBytes)} MiB were still dirty (it would settle near ${mib(settled)} MiB)`,
  };
}

/** The error of a transfer stopped by cancelTransfer or close(). */
export function transferCancelled(vmId: string, migrationId: string, why: string): FlexmigError {
  return new FlexmigError(
    ErrorCode.Conflict,
    `the memory transfer of VM ${vmId} (migration ${migrationId}) was cancelled (${why}); the VM keeps running on the source`,
    { code: ConvergenceFailureCode.Cancelled },
    false,
  );
}
