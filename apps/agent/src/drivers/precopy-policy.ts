/**
 * The bridge between the wire policy (`@flexmig/contracts` MigrationPolicy, what the scheduler sends
 * with every step) and the model's policy (`@flexmig/migration-model`, what `decideConvergence`
 * reads), and the errors a failed convergence turns into. Shared by the drivers: the QEMU driver steers
 * with the same policy from `query-migrate` samples.
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
 * True when waiting longer is pointless: the guest keeps failing QEMU's convergence test, the model
 * says the remaining can never fit the budget at the current throttle and limit, and the policy has no
 * lever left (auto-converge off or at its maximum, no post-copy, no downtime step to come). The
 * policy alone (KubeVirt's rules) would keep copying until the completion timeout; a simulator knows
 * the outcome and says so at once, with the figures. Post-copy is left to `decideConvergence`.
 */
export function stalledWithoutLever(history: readonly PassSample[], params: PrecopyParams, policy: ModelPolicy, throttlePct: number, downtimeLimitMs: number): boolean {
  const last = history[history.length - 1];
  if (!last || policy.postCopy) return false;
  if (policy.autoConverge && throttlePct < policy.maxThrottlePct) return false;
  if (downtimeSchedule(policy).at(-1)!.downtimeLimitMs > downtimeLimitMs) return false;
  const hits = trailingNonConvergingPasses(history, policy.throttleTriggerThresholdPct);
  const notConverging = hits >= QEMU_THROTTLE_TRIGGER_COUNT || (throttlePct > 0 && hits >= 1);
  return notConverging && cannotConverge(params, throttlePct, downtimeLimitMs);
}

export interface ConvergenceFailureFacts {
  vmId: string;
  migrationId: string;
  code: Exclude<ConvergenceFailureCode, 'CANCELLED'> | ConvergenceAbortCode;
  /** What the policy or the driver said, in words. */
  reason: string;
  params: PrecopyParams;
  policy: ModelPolicy;
  /** Link speed of this host (the cap, if any, is in the policy). */
  linkBytesPerSec: number;
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
  const p = f.params;
  const settled = remainingLimitBytes(p, f.throttlePct);
  const stalled = f.code === ConvergenceFailureCode.NotConverging;
  // a stall is about where the remaining settles; a timeout about where it still was
  const neededMs = Math.round(expectedDowntimeMs(stalled ? settled : f.remainingBytes, p.bandwidthBytesPerSec));
  const dirty = stalled
    ? `so about ${mib(settled)} MiB stay dirty`
    : `and ${mib(f.remainingBytes)} MiB were still dirty (it would settle near ${mib(settled)} MiB)`;
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
  const capped = f.policy.bandwidthMiBps ? f.policy.bandwidthMiBps * BYTES_PER_MIB < f.linkBytesPerSec : false;
  if (capped) advice.push(`raise or lift the bandwidth cap (${f.policy.bandwidthMiBps} MiB/s on a ${mib(f.linkBytesPerSec)} MiB/s link)`);
  advice.push(`raise the downtime limit (the guest needs about ${neededMs} ms, the limit is ${Math.round(f.downtimeLimitMs)} ms)`);
  advice.push('or migrate when the guest writes less memory');
  const message =
    `the memory transfer of VM ${f.vmId} (migration ${f.migrationId}) ${what} after ${f.passes} pass(es) and ` +
    `${(f.elapsedMs / 1000).toFixed(1)} s: ${f.reason}. ` +
    `The guest dirties ${mib(p.dirtyRateBytesPerSec)} MiB/s (working set ${mib(p.workingSetBytes)} MiB${f.throttlePct ? `, throttled ${f.throttlePct}%` : ''}) ` +
    `against ${mib(p.bandwidthBytesPerSec)} MiB/s of migration bandwidth, ${dirty}. ` +
    `The VM keeps running on the source. To migrate it: ${advice.join(', ')}.`;
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
      dirtyRateBytesPerSec: p.dirtyRateBytesPerSec,
      bandwidthBytesPerSec: p.bandwidthBytesPerSec,
    },
    // the same migration with the same policy fails the same way: a retry needs a change first
    false,
  );
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
