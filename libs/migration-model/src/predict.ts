/**
 * A migration's time and downtime before it starts (issue 12, part 2): the closed loop the sim driver
 * runs (`simulateWithPolicy`: the pre-copy model steered by `decideConvergence`), on measured inputs,
 * all at once on the virtual clock. When the policy would not get the guest to converge, each lever it
 * leaves unused is tried the same way and kept when it converges, with what it costs.
 */
import { MAX_DOWNTIME_LIMIT_MS, MS_PER_SEC } from './constants';
import type { MigrationOutcome, MigrationResult } from './precopy-model';
import { cappedBandwidthBytesPerSec, remainingLimitBytes } from './precopy-model';
import { type MigrationPolicy, type MigrationPolicyInput, type PrecopyParamsInput, resolveMigrationPolicy, resolvePrecopyParams } from './schemas';
import { simulateWithPolicy } from './simulate-with-policy';

/** What the prediction is computed from: the guest's and the link's measured figures, plus the model's knobs. */
export interface PredictionInputs {
  memoryBytes: number;
  /** The guest's (unthrottled) dirty rate. */
  dirtyRateBytesPerSec: number;
  /** Where its writes fall (≤ memoryBytes); absent: all of its memory. */
  workingSetBytes?: number;
  /** The link between the two hosts; a policy's cap lowers the pre-copy rate, never the switchover's. */
  linkBandwidthBytesPerSec: number;
  passOverheadMs?: number;
  deviceStateBytes?: number;
  /** The pause's cost besides copying (stop, last sync, the control plane's round trips until the resume). */
  switchoverFixedMs?: number;
  /**
   * Time of the migration outside pre-copy and the pause (reserving, starting the target, finishing up),
   * added to the total: the model's passes are the hypervisor's, not the control plane's. Default 0.
   */
  setupMs?: number;
}

/** The policy as the prediction reads it: the model's, whose memory size comes from the inputs. */
export type PredictionPolicy = Omit<MigrationPolicyInput, 'memoryBytes'>;

export interface Prediction {
  totalTimeMs: number;
  /** The guest's pause; 0 when it would not complete. */
  downtimeMs: number;
  passes: number;
  bytesTransferred: number;
  /** The VM would end up running on the target (pre-copy converged, or post-copy finished it). */
  converges: boolean;
  outcome: MigrationOutcome;
  /** How it would switch over: `precopy` (stop and copy), `postcopy`, or `none` (it would not complete). */
  switchover: 'precopy' | 'postcopy' | 'none';
  /** The highest auto-converge throttle the policy would apply (0: none). */
  throttlePct: number;
  /** Why it would not complete (the policy's abort), when it would not. */
  reason?: string;
}

export type LeverName = 'auto-converge' | 'downtime-limit' | 'post-copy';

/** A change of policy that would make a non-converging migration converge, and what it costs. */
export interface Lever {
  lever: LeverName;
  /** The policy fields to set. */
  policy: { autoConverge?: true; downtimeLimitMs?: number; postCopy?: true };
  predicted: Prediction;
  /** The price, in words and figures (the guest's CPU, its pause, the risk of post-copy). */
  cost: string;
}

export interface PredictionAnswer {
  predicted: Prediction;
  /** Empty when it converges under the policy, or when no lever would help (then `predicted.reason` says why). */
  levers: Lever[];
}

/** The model's parameters for these inputs and this policy (the sim driver builds the same). */
export function predictionParams(inputs: PredictionInputs, policy: MigrationPolicy): PrecopyParamsInput {
  return {
    memoryBytes: inputs.memoryBytes,
    dirtyRateBytesPerSec: inputs.dirtyRateBytesPerSec,
    ...(inputs.workingSetBytes !== undefined ? { workingSetBytes: Math.min(inputs.workingSetBytes, inputs.memoryBytes) } : {}),
    bandwidthBytesPerSec: cappedBandwidthBytesPerSec(inputs.linkBandwidthBytesPerSec, policy.bandwidthMiBps),
    switchoverBandwidthBytesPerSec: inputs.linkBandwidthBytesPerSec,
    downtimeLimitMs: policy.downtimeLimitMs,
    ...(inputs.passOverheadMs !== undefined ? { passOverheadMs: inputs.passOverheadMs } : {}),
    ...(inputs.deviceStateBytes !== undefined ? { deviceStateBytes: inputs.deviceStateBytes } : {}),
    ...(inputs.switchoverFixedMs !== undefined ? { switchoverFixedMs: inputs.switchoverFixedMs } : {}),
  };
}

function summary(result: MigrationResult, decisions: ReturnType<typeof simulateWithPolicy>['decisions']): Prediction {
  const throttles = decisions.flatMap((d) => (d.decision.action === 'throttle' ? [d.decision.percent] : []));
  const abort = decisions.find((d) => d.decision.action === 'abort');
  return {
    totalTimeMs: result.totalTimeMs,
    downtimeMs: result.downtimeMs,
    passes: result.passes,
    bytesTransferred: result.bytesTransferred,
    converges: result.completed,
    outcome: result.outcome,
    switchover: result.outcome === 'postcopy' ? 'postcopy' : result.completed ? 'precopy' : 'none',
    throttlePct: Math.max(0, ...throttles),
    ...(result.completed ? {} : { reason: abort?.decision.reason ?? result.abortReason ?? `pre-copy did not converge within ${result.passes} passes` }),
  };
}

function run(inputs: PredictionInputs, policy: MigrationPolicy): Prediction {
  const { result, decisions } = simulateWithPolicy(predictionParams(inputs, policy), policy);
  const p = summary(result, decisions);
  return inputs.setupMs ? { ...p, totalTimeMs: p.totalTimeMs + inputs.setupMs } : p;
}

const sec = (ms: number) => `${(ms / MS_PER_SEC).toFixed(1)} s`;

/**
 * The least downtime limit (whole ms) at which pre-copy converges without a throttle: the remaining's
 * limit (the working set, or c = D·o/(1 − r)) over the pre-copy bandwidth, with a 10% margin since the
 * remaining only approaches c. null when that exceeds the largest limit a policy accepts.
 */
export function convergingDowntimeLimitMs(inputs: PredictionInputs, policy: MigrationPolicy): number | null {
  const p = resolvePrecopyParams(predictionParams(inputs, policy));
  const limitMs = (remainingLimitBytes(p, 0) / p.bandwidthBytesPerSec) * MS_PER_SEC;
  const wanted = Math.max(1, Math.ceil(Math.round(limitMs * 1.1 * 1e6) / 1e6)); // no ms lost to 6000 × 1.1 = 6600.000000001
  return wanted <= MAX_DOWNTIME_LIMIT_MS ? wanted : null;
}

function leverCandidates(inputs: PredictionInputs, policy: MigrationPolicy): Array<Pick<Lever, 'lever' | 'policy'>> {
  const out: Array<Pick<Lever, 'lever' | 'policy'>> = [];
  if (!policy.autoConverge) out.push({ lever: 'auto-converge', policy: { autoConverge: true } });
  const limit = convergingDowntimeLimitMs(inputs, policy);
  if (limit !== null && limit > policy.downtimeLimitMs) out.push({ lever: 'downtime-limit', policy: { downtimeLimitMs: limit } });
  if (!policy.postCopy) out.push({ lever: 'post-copy', policy: { postCopy: true } });
  return out;
}

function costOf(lever: LeverName, p: Prediction, policy: MigrationPolicy): string {
  switch (lever) {
    case 'auto-converge':
      return `the guest's vCPUs are throttled up to ${p.throttlePct}% (QEMU auto-converge) while it migrates for ${sec(p.totalTimeMs)}`;
    case 'downtime-limit':
      return `a downtime limit above the policy's ${policy.downtimeLimitMs} ms: the guest would pause about ${Math.round(p.downtimeMs)} ms`;
    case 'post-copy':
      return (
        `the guest runs on the target after a ${Math.round(p.downtimeMs)} ms pause and faults its pages in over the network for about ` +
        `${sec(p.totalTimeMs)} in all; should the source, the target or the link fail meanwhile, the VM is lost (post-copy cannot roll back)`
      );
  }
}

/**
 * Predicts a migration under `policy` and, when it would not converge, which lever would make it converge
 * and at what cost. Pure: the same inputs give the same answer.
 */
export function predict(inputs: PredictionInputs, policyInput: PredictionPolicy = {}): PredictionAnswer {
  const policy = resolveMigrationPolicy({ ...policyInput, memoryBytes: Math.round(inputs.memoryBytes) });
  const predicted = run(inputs, policy);
  if (predicted.converges) return { predicted, levers: [] };
  const levers: Lever[] = [];
  for (const c of leverCandidates(inputs, policy)) {
    const p = run(inputs, resolveMigrationPolicy({ ...policy, ...c.policy }));
    if (p.converges) levers.push({ ...c, predicted: p, cost: costOf(c.lever, p, policy) });
  }
  return { predicted, levers };
}
