/**
 * The physics of pre-copy live migration, in closed form (`analyticPrecopy`) and the pieces the
 * stepwise simulator (`PrecopySimulation`) shares with it.
 *
 * THE MODEL (all sizes in bytes, rates in bytes/s, times in ms; README.md has the long version)
 *   M memory, W working set (≤ M), B bandwidth, D dirty rate, p throttle %,
 *   D' = D·(1 − p/100) the effective dirty rate, o the per-pass overhead, L the downtime limit.
 *   - Pass k sends everything that is dirty when it starts: R(k−1) bytes, with R(0) = M (all of RAM).
 *   - It lasts t(k) = o + R(k−1)/B (bitmap sync, then the copy at full bandwidth).
 *   - The guest dirties pages meanwhile, but only inside its working set, so what is dirty when the pass
 *     ends is R(k) = min(W, D'·t(k)). Pages dirtied twice count once; pages dirtied during pass k−1
 *     and sent by pass k are clean again. That is why R(k) does not accumulate across passes.
 *   - After each pass, QEMU's test: switch over when R(k)/B ≤ L (B is the bandwidth it measured).
 *   - The switchover (guest paused) copies R(k) plus the device state S at the switchover bandwidth
 *     Bs (QEMU lifts max-bandwidth for it) and costs a fixed f:
 *       downtime = (R(k) + S)/Bs + f.
 *
 * CLOSED FORM. With r = D'/B and d = D'·o (bytes dirtied during one overhead):
 *     R(k) = min(W, r·R(k−1) + d)                                  (1)
 *   which is affine, so with c = d/(1 − r) (its fixed point, r < 1):
 *     R(k) − c = r·(R(k−1) − c)  ⇒  R(k) = c + r^(k−1)·(R(1) − c),   R(1) = min(W, r·M + d)   (2)
 *   The working-set cap can only bite at pass 1: if R(1) > c the sequence decreases from R(1) ≤ W and
 *   never reaches W again; if R(1) ≤ c it climbs towards min(W, c) and can never fit the budget, see
 *   below. With o = 0 (so d = c = 0) and no cap, pass k sends r^(k−1)·M: the geometric series.
 *   - Converges at pass 1 when R(1) ≤ B·L.
 *   - Otherwise it converges at all only when the limit of the sequence, min(W, c) (c = ∞ for r ≥ 1),
 *     is below B·L; else the remaining "cannot shrink" enough: outcome `not-converging` after pass 1.
 *     (For r ≥ 1 this is the plateau R(k) = W for every k ≥ 1.)
 *   - When it converges, the pass count is the least k with c + r^(k−1)(R(1) − c) ≤ B·L:
 *       k = 1 + ⌈ ln((B·L − c)/(R(1) − c)) / ln r ⌉                (3)
 *     capped by maxPasses (outcome `max-passes`).
 *   - Bytes sent by passes 1..k: S(k) = M + Σ_{j=1}^{k−1} R(j) = M + (k−1)·c + (R(1) − c)·(1 − r^(k−1))/(1 − r)
 *     and pre-copy time = k·o + S(k)/B.
 *   - Result: total = pre-copy time + downtime; bytes = S(k) + R(k) + S_device.
 *
 * POST-COPY. When switched after pass k, the guest pauses only for the device state and the fixed
 * switchover cost, ((S_device)/Bs + f), then runs on the target while the R(k) remaining bytes are pulled
 * on demand (and in the background) at Bs: total += R(k)/Bs. QEMU measured 2 ms of downtime here (§9).
 */
import { BYTES_PER_MIB, FIT_RELATIVE_EPSILON, MS_PER_SEC } from './constants';
import { type PrecopyParams, type PrecopyParamsInput, resolvePrecopyParams } from './schemas';

/**
 * One completed pre-copy pass, as the model produces it and as a convergence policy reads it. The
 * QEMU driver can build the same shape from `query-migrate` (ram.remaining, dirty-pages-rate, mbps,
 * expected-downtime, cpu-throttle-percentage) at each MIGRATION_PASS event.
 */
export interface PassSample {
  /** 1-based, like QEMU's dirty-sync-count. */
  pass: number;
  /** ms since the migration started. */
  startMs: number;
  endMs: number;
  /** Bytes this pass sent (everything dirty when it started). */
  bytesSent: number;
  /** Bytes dirty when the pass ended: what the next pass (or the switchover) must send. */
  remainingBytes: number;
  /** Effective (throttled) dirty rate during the pass. */
  dirtyRateBytesPerSec: number;
  bandwidthBytesPerSec: number;
  /** remainingBytes / bandwidth: QEMU's expected-downtime (RAM only). */
  expectedDowntimeMs: number;
  /** Auto-converge throttle in effect during the pass (0 = none). */
  throttlePct: number;
  /** The downtime limit the pass was checked against. */
  downtimeLimitMs: number;
}
/** The model's per-pass output is exactly the policy's per-pass input. */
export type PassResult = PassSample;

/**
 * How a migration ended: `converged` (pre-copy fitted the budget and switched over), `postcopy`
 * (completed by post-copy), `not-converging` (the remaining can never fit the budget with these
 * parameters), `max-passes` (ran out of passes), `aborted` (cancelled, e.g. by the policy).
 */
export type MigrationOutcome = 'converged' | 'postcopy' | 'not-converging' | 'max-passes' | 'aborted';

export interface MigrationResult {
  outcome: MigrationOutcome;
  /** Pre-copy met the downtime budget (outcome `converged`). */
  converged: boolean;
  /** The VM runs on the target (outcome `converged` or `postcopy`). */
  completed: boolean;
  passes: number;
  passResults: PassSample[];
  /** Sum of the pass durations (start of pass 1 to end of the last pass). */
  precopyTimeMs: number;
  /** The guest's pause: 0 when the migration did not complete. */
  downtimeMs: number;
  /** Start to finish (completion, or the moment it stopped). */
  totalTimeMs: number;
  /** RAM and device state sent, all phases included. */
  bytesTransferred: number;
  /** Dirty bytes when pre-copy stopped (the final copy, the post-copy pull, or what was left). */
  remainingBytes: number;
  /** remainingBytes / bandwidth when pre-copy stopped: what a forced switchover would have cost in RAM copy. */
  expectedDowntimeMs: number;
  /** Bytes pulled by post-copy (0 otherwise). */
  postcopyBytes: number;
  /** Time spent pulling pages after the post-copy switchover (0 otherwise). */
  postcopyTimeMs: number;
  /** Throttle and downtime limit in effect at the end. */
  throttlePct: number;
  downtimeLimitMs: number;
  abortReason?: string;
}

// ---- shared physics ------------------------------------------------------------------------------

/** The guest's dirty rate under an auto-converge throttle of `throttlePct` percent. */
export function effectiveDirtyRate(dirtyRateBytesPerSec: number, throttlePct: number): number {
  return dirtyRateBytesPerSec * (1 - throttlePct / 100);
}

/** Duration of a pass that sends `bytes`: overhead, then the copy at full bandwidth. */
export function passDurationMs(bytes: number, bandwidthBytesPerSec: number, passOverheadMs: number): number {
  return passOverheadMs + (bytes / bandwidthBytesPerSec) * MS_PER_SEC;
}

/** Pages dirty after `durationMs` of a guest dirtying at `rate`, confined to `workingSetBytes`. */
export function dirtiedBytes(durationMs: number, rateBytesPerSec: number, workingSetBytes: number): number {
  return Math.min(workingSetBytes, (rateBytesPerSec * durationMs) / MS_PER_SEC);
}

/** The budget in bytes: what can be copied within the downtime limit at this bandwidth. */
export function downtimeBudgetBytes(bandwidthBytesPerSec: number, downtimeLimitMs: number): number {
  return (bandwidthBytesPerSec * downtimeLimitMs) / MS_PER_SEC;
}

/** QEMU's switchover test: remaining / bandwidth ≤ downtime limit (with a rounding slack of 1e-9). */
export function fitsDowntimeBudget(remainingBytes: number, bandwidthBytesPerSec: number, downtimeLimitMs: number): boolean {
  return remainingBytes <= downtimeBudgetBytes(bandwidthBytesPerSec, downtimeLimitMs) * (1 + FIT_RELATIVE_EPSILON);
}

/** remaining / bandwidth in ms: QEMU's expected-downtime. */
export function expectedDowntimeMs(remainingBytes: number, bandwidthBytesPerSec: number): number {
  return (remainingBytes / bandwidthBytesPerSec) * MS_PER_SEC;
}

/** The guest's pause at a pre-copy switchover: last dirty RAM + device state at Bs, plus the fixed cost. */
export function switchoverDowntimeMs(finalDirtyBytes: number, p: PrecopyParams): number {
  return ((finalDirtyBytes + p.deviceStateBytes) / p.switchoverBandwidthBytesPerSec) * MS_PER_SEC + p.switchoverFixedMs;
}

/** Post-copy: pause = device state + fixed cost; then the remaining pages are pulled while the guest runs. */
export function postcopyCompletion(
  remainingBytes: number,
  p: PrecopyParams,
): { downtimeMs: number; pullTimeMs: number; bytes: number } {
  return {
    downtimeMs: switchoverDowntimeMs(0, p),
    pullTimeMs: (remainingBytes / p.switchoverBandwidthBytesPerSec) * MS_PER_SEC,
    bytes: remainingBytes + p.deviceStateBytes,
  };
}

/**
 * Where the remaining bytes settle with these parameters if nothing changes: min(W, c) with
 * c = D'·o/(1 − r) for r = D'/B < 1, else W. Pre-copy converges (after pass 1) iff this is below the
 * budget B·L.
 */
export function remainingLimitBytes(p: PrecopyParams, throttlePct = p.throttlePct): number {
  const rate = effectiveDirtyRate(p.dirtyRateBytesPerSec, throttlePct);
  const r = rate / p.bandwidthBytesPerSec;
  if (r >= 1) return p.workingSetBytes;
  const d = (rate * p.passOverheadMs) / MS_PER_SEC;
  return Math.min(p.workingSetBytes, d / (1 - r));
}

/** True when the remaining can never fit the budget with these parameters (needs a policy to act). */
export function cannotConverge(p: PrecopyParams, throttlePct = p.throttlePct, downtimeLimitMs = p.downtimeLimitMs): boolean {
  return !fitsDowntimeBudget(remainingLimitBytes(p, throttlePct), p.bandwidthBytesPerSec, downtimeLimitMs);
}

// ---- the closed form ---------------------------------------------------------------------------

/**
 * Pre-copy in closed form (see the header for the derivation): the passes, whether and when it
 * converges, and the totals. No policy acts: the throttle and the downtime limit stay as given.
 * Stops after pass 1 with `not-converging` when the remaining can never fit the budget.
 */
export function analyticPrecopy(input: PrecopyParamsInput): MigrationResult {
  const p = resolvePrecopyParams(input);
  const M = p.memoryBytes;
  const W = p.workingSetBytes;
  const B = p.bandwidthBytesPerSec;
  const o = p.passOverheadMs;
  const rate = effectiveDirtyRate(p.dirtyRateBytesPerSec, p.throttlePct);
  const r = rate / B;
  const d = (rate * o) / MS_PER_SEC;
  const c = r < 1 ? d / (1 - r) : Number.POSITIVE_INFINITY;
  const R1 = Math.min(W, r * M + d);

  /** Dirty bytes after pass k, eq. (2); R(0) = M. */
  const R = (k: number): number => {
    if (k === 0) return M;
    if (r >= 1) return W; // R(1) = W already (r·M + d ≥ M ≥ W), and W is a fixed point of (1)
    return Math.min(W, c + r ** (k - 1) * (R1 - c));
  };
  /** Bytes sent by passes 1..k: S(k) = M + Σ_{j=1}^{k−1} R(j) (only used in the decreasing regime). */
  const S = (k: number): number => {
    if (k <= 1) return k === 1 ? M : 0;
    if (r >= 1) return M + (k - 1) * W;
    return M + (k - 1) * c + ((R1 - c) * (1 - r ** (k - 1))) / (1 - r);
  };
  const fits = (bytes: number) => fitsDowntimeBudget(bytes, B, p.downtimeLimitMs);

  let passes: number;
  let outcome: MigrationOutcome;
  if (fits(R1)) {
    passes = 1;
    outcome = 'converged';
  } else if (cannotConverge(p)) {
    passes = 1;
    outcome = 'not-converging';
  } else {
    // Here r < 1 and c < B·L < R(1): R decreases geometrically towards c; eq. (3).
    const budget = downtimeBudgetBytes(B, p.downtimeLimitMs) * (1 + FIT_RELATIVE_EPSILON);
    let k = r === 0 ? 2 : 1 + Math.ceil(Math.log((budget - c) / (R1 - c)) / Math.log(r));
    // eq. (3) in floating point can be one off at an exact boundary: settle it on R itself. With c the budget to
    // the last bit it is log(0): infinite, as is the pass that fits. Only up to maxPasses + 1 matters (past it, the
    // outcome is max-passes), so k is kept within [2, maxPasses + 1] and both searches end within that range.
    const past = p.maxPasses + 1;
    k = Number.isFinite(k) ? Math.min(Math.max(2, k), past) : past;
    while (k > 2 && fits(R(k - 1))) k -= 1;
    while (k < past && !fits(R(k))) k += 1;
    if (k > p.maxPasses) {
      passes = p.maxPasses;
      outcome = 'max-passes';
    } else {
      passes = k;
      outcome = 'converged';
    }
  }

  const passResults: PassSample[] = [];
  for (let k = 1; k <= passes; k += 1) {
    const bytesSent = R(k - 1);
    const remainingBytes = R(k);
    passResults.push({
      pass: k,
      startMs: (k - 1) * o + (S(k - 1) / B) * MS_PER_SEC,
      endMs: k * o + (S(k) / B) * MS_PER_SEC,
      bytesSent,
      remainingBytes,
      dirtyRateBytesPerSec: rate,
      bandwidthBytesPerSec: B,
      expectedDowntimeMs: expectedDowntimeMs(remainingBytes, B),
      throttlePct: p.throttlePct,
      downtimeLimitMs: p.downtimeLimitMs,
    });
  }
  const precopyTimeMs = passes * o + (S(passes) / B) * MS_PER_SEC;
  const remainingBytes = R(passes);
  const converged = outcome === 'converged';
  const downtimeMs = converged ? switchoverDowntimeMs(remainingBytes, p) : 0;
  return {
    outcome,
    converged,
    completed: converged,
    passes,
    passResults,
    precopyTimeMs,
    downtimeMs,
    totalTimeMs: precopyTimeMs + downtimeMs,
    bytesTransferred: S(passes) + (converged ? remainingBytes + p.deviceStateBytes : 0),
    remainingBytes,
    expectedDowntimeMs: expectedDowntimeMs(remainingBytes, B),
    postcopyBytes: 0,
    postcopyTimeMs: 0,
    throttlePct: p.throttlePct,
    downtimeLimitMs: p.downtimeLimitMs,
  };
}

/**
 * The pre-copy bandwidth under a policy's cap: min(link, cap MiB/s); a cap of 0 or none = the link.
 * (The switchover itself is not capped: QEMU lifts max-bandwidth for it, §3.)
 */
export function cappedBandwidthBytesPerSec(linkBytesPerSec: number, capMiBps?: number): number {
  if (!capMiBps) return linkBytesPerSec;
  return Math.min(linkBytesPerSec, capMiBps * BYTES_PER_MIB);
}
