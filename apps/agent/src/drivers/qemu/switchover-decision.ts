/**
 * When the source may switch over (stop the guest and send what is left): the pure decision, from what
 * the agent measured itself. No I/O; the transfer monitor feeds it query-migrate samples.
 *
 * QEMU 7.2 switches over when its pending bytes, counted right after a dirty-bitmap sync, are below
 * `bandwidth × downtime-limit`, where `bandwidth` is what it wrote to the socket in its last ~100 ms
 * window (reference/qemu-migration.md §3). That window counts bursts into the socket buffer, not what the
 * target takes in, and the final copy also pays the device state and the target's load: the guest's
 * downtime overshot the 300 ms limit by 2–3× on bench/qemu's dirtying guests. The pending count itself is
 * exact at that moment; only the rate is wrong.
 *
 * So the agent measures the rate itself, over a longer window of its own samples (`realBandwidth`), and
 * hands QEMU a `downtime-limit` that makes QEMU's own test at least as strict as
 *   pending ≤ realBandwidth × margin × (limit − reserve)
 * (`qemuDowntimeLimitMs`). QEMU's window figure jumps between its 100 ms windows (seen here: 235 MB/s in
 * one sample, enough in another to let 43 MiB through a 46 ms limit; 1,202 MiB/s in one window of a
 * 570 MiB/s stream, above every figure it had shown), so the limit is scaled by the highest figure QEMU
 * may decide on: the highest it showed lately and, once the stream has run a full window, the cap the
 * agent then holds it to (`streamCapBytesPerSec`), which QEMU enforces per window. Whatever window QEMU
 * then decides on, it lets through no more than fits. QEMU keeps deciding at its fresh sync, which the
 * agent cannot do from outside. Until the agent has measured a rate, the limit handed to QEMU is the
 * smallest: only a guest with nothing left to send switches over.
 *
 * When it never fits (the guest dirties more per pass than the budget), QEMU never switches over and the
 * policy's levers act (transfer-monitor.ts, precopy-policy.ts): auto-converge throttles the guest until
 * it fits; a downtime step raises the limit; post-copy takes over; without a lever left, or at the
 * completion timeout, the transfer fails with NOT_CONVERGING / COMPLETION_TIMEOUT and the guest keeps
 * running on the source.
 */

import { QEMU_AGENT_SWITCHOVER_BANDWIDTH_MARGIN, QEMU_AGENT_SWITCHOVER_RESERVE_MS, QEMU_AGENT_SWITCHOVER_STOP_MARGIN_MS, qemuAgentStopCopyMs } from '@flexmig/migration-model';

/** One look at the stream: bytes written so far (`ram.transferred`) and QEMU's own figure (bytes/s) at a time. */
export interface RateSample {
  atMs: number;
  transferred: number;
  qemuBytesPerSec?: number;
}

/** The highest figure QEMU showed in the last `windowMs` of samples (0 if none). */
export function qemuPeakBandwidth(samples: readonly RateSample[], windowMs: number): number {
  const last = samples.at(-1);
  let peak = 0;
  for (let i = samples.length - 1; i >= 0 && last && last.atMs - samples[i]!.atMs <= windowMs; i--) peak = Math.max(peak, samples[i]!.qemuBytesPerSec ?? 0);
  return peak;
}

export interface SwitchoverTuning {
  /** The span of samples the bandwidth is measured over. */
  windowMs: number;
  /** The shortest span that counts as a measurement. */
  minWindowMs: number;
  /** The part of the downtime that does not depend on the dirty bytes: device state, the target's load, its start. */
  reserveMs: number;
  /** The share of the measured bandwidth the final copy is counted on (≤ 1). */
  bandwidthMargin: number;
  /**
   * How long the guest may still run, and dirty memory, after QEMU decided to switch over: QEMU decides at
   * its dirty-bitmap sync, then stops the vCPUs. That much of the guest's dirty rate is kept out of the
   * budget (`qemuDowntimeLimitMs`).
   */
  stopMarginMs: number;
  /**
   * How far above the highest rate it measured over a full window the agent caps the stream (> 1): QEMU's
   * window figure can then never exceed that cap (`streamCapBytesPerSec`), while the stream keeps room to
   * burst and to speed up.
   */
  capHeadroom: number;
}

export const DEFAULT_SWITCHOVER_TUNING: SwitchoverTuning = {
  windowMs: 1_000,
  minWindowMs: 200,
  // shared with the prediction, which switches over on the same budget (libs/migration-model)
  reserveMs: QEMU_AGENT_SWITCHOVER_RESERVE_MS,
  bandwidthMargin: QEMU_AGENT_SWITCHOVER_BANDWIDTH_MARGIN,
  // qemu.driver.int.spec (f) on a loaded 2-vCPU TCG machine: 53–56 MiB more at the stop than QEMU's
  // threshold let through at its sync, from a guest dirtying 256 MiB/s: about 210 ms of the guest running on
  // (shared with the prediction too)
  stopMarginMs: QEMU_AGENT_SWITCHOVER_STOP_MARGIN_MS,
  // twice the stream's rate: bursts into the socket buffer above it add nothing the target takes in, and a
  // stream held to it still doubles its rate within a second (the window its rate is measured over)
  capHeadroom: 2,
};

/** QEMU's bounds for `downtime-limit` (ms); 1 rather than 0, so that a guest with nothing left still switches. */
export const QEMU_MIN_DOWNTIME_LIMIT_MS = 1;

/**
 * Bytes per second over the last `windowMs` of `samples` (oldest first), or undefined when they span less
 * than `minWindowMs` or nothing moved (no measurement yet).
 */
export function realBandwidth(samples: readonly RateSample[], tuning: Pick<SwitchoverTuning, 'windowMs' | 'minWindowMs'> = DEFAULT_SWITCHOVER_TUNING): number | undefined {
  const last = samples.at(-1);
  if (!last) return undefined;
  // the newest sample at least windowMs old, else the oldest
  let first = samples[0]!;
  for (let i = samples.length - 1; i >= 0; i--) {
    if (last.atMs - samples[i]!.atMs >= tuning.windowMs) {
      first = samples[i]!;
      break;
    }
  }
  const spanMs = last.atMs - first.atMs;
  const bytes = last.transferred - first.transferred;
  if (spanMs < tuning.minWindowMs || bytes <= 0) return undefined;
  return (bytes * 1000) / spanMs;
}

/** The downtime the agent expects for `remainingBytes` at `bytesPerSec`: the bytes at the margin's rate plus the reserve. */
export function expectedSwitchoverMs(remainingBytes: number, bytesPerSec: number, tuning: Pick<SwitchoverTuning, 'reserveMs' | 'bandwidthMargin'> = DEFAULT_SWITCHOVER_TUNING): number {
  if (!(bytesPerSec > 0)) return Number.POSITIVE_INFINITY;
  return tuning.reserveMs + (remainingBytes * 1000) / (bytesPerSec * tuning.bandwidthMargin);
}

/** The switchover fits the limit: the expected downtime of what is left is within it. */
export function switchoverFits(remainingBytes: number, bytesPerSec: number | undefined, limitMs: number, tuning: Pick<SwitchoverTuning, 'reserveMs' | 'bandwidthMargin'> = DEFAULT_SWITCHOVER_TUNING): boolean {
  if (remainingBytes <= 0) return true;
  if (bytesPerSec === undefined) return false;
  return expectedSwitchoverMs(remainingBytes, bytesPerSec, tuning) <= limitMs;
}

export interface StreamCapInputs {
  /** The cap the agent set earlier in this transfer (bytes/s), if any. */
  currentBytesPerSec: number | undefined;
  /** The policy's own cap (`bandwidthMiBps`, as bytes/s), if any: the agent's cap never exceeds it. */
  policyBytesPerSec: number | undefined;
  /** The stream's rate over a full window of the agent's samples (realBandwidth with minWindowMs = windowMs); undefined until it ran that long. */
  fullWindowBytesPerSec: number | undefined;
}

/**
 * The `max-bandwidth` the agent holds the stream to (bytes/s, whole), or undefined while it sets none.
 *
 * QEMU enforces `max-bandwidth` per 100 ms window, so no window figure, the one QEMU multiplies its
 * `downtime-limit` by, can show more than the cap: the highest figure QEMU may decide on is then known in
 * advance, where the highest one seen so far is not (docs/switchover.md). The cap is `capHeadroom` above
 * the rate measured over a full window, only once the stream has run one (an early figure, from a stream
 * still setting up, would hold the whole stream down). It never falls, so no window under way finds itself
 * above it, and it never exceeds the policy's cap. QEMU lifts it for the final copy.
 */
export function streamCapBytesPerSec(i: StreamCapInputs, tuning: Pick<SwitchoverTuning, 'capHeadroom'> = DEFAULT_SWITCHOVER_TUNING): number | undefined {
  if (i.fullWindowBytesPerSec === undefined || !(i.fullWindowBytesPerSec > 0)) return i.currentBytesPerSec;
  const wanted = Math.max(i.currentBytesPerSec ?? 0, Math.ceil(tuning.capHeadroom * i.fullWindowBytesPerSec));
  const policy = i.policyBytesPerSec !== undefined && i.policyBytesPerSec > 0 ? i.policyBytesPerSec : undefined;
  return policy !== undefined ? Math.min(policy, wanted) : wanted;
}

/**
 * The highest window figure QEMU may decide on (bytes/s): the highest it showed in the last few seconds,
 * and, once the agent caps the stream, at least that cap (which every later window keeps to).
 */
export function qemuFigureBound(qemuPeakBytesPerSec: number, streamCapBytesPerSec: number | undefined): number {
  return streamCapBytesPerSec !== undefined ? Math.max(qemuPeakBytesPerSec, streamCapBytesPerSec) : qemuPeakBytesPerSec;
}

export interface QemuLimitInputs {
  /** The policy's downtime limit now (raised by the policy's downtime steps, if any), ms. */
  limitMs: number;
  /** The agent's measured bandwidth (realBandwidth), bytes/s; undefined before the first measurement. */
  realBytesPerSec: number | undefined;
  /** The highest figure QEMU may multiply its downtime-limit by (bytes/s): `qemuFigureBound` of its figures lately (query-migrate `ram.mbps`) and the stream's cap. */
  qemuPeakBytesPerSec: number;
  /**
   * How fast the guest dirties memory now (query-migrate `ram.dirty-pages-rate` × page size), bytes/s;
   * undefined until QEMU has measured it (0 until two of its dirty-bitmap syncs lie a second apart): the
   * smallest limit until then.
   */
  dirtyBytesPerSec: number | undefined;
}

/**
 * The `downtime-limit` to hand QEMU so that its switchover test (pending < qemuBandwidth × limit) lets
 * through no more than `switchoverFits` allows at the agent's bandwidth, for any QEMU figure up to the
 * peak: budget × real × margin / peak, whole ms (rounded down), within [QEMU_MIN_DOWNTIME_LIMIT_MS, limitMs].
 * The budget is the limit less the reserve, and less the time the final copy needs for what the guest
 * dirties between QEMU's decision and its stop (`stopMarginMs` of `dirtyBytesPerSec`): QEMU counts its
 * pending bytes at its sync, and the guest runs on until the vCPUs stop. Without a measured rate, or
 * before QEMU has measured the guest's dirty rate, the smallest: only a guest with nothing left switches.
 */
export function qemuDowntimeLimitMs(
  i: QemuLimitInputs,
  tuning: Pick<SwitchoverTuning, 'reserveMs' | 'bandwidthMargin'> & Partial<Pick<SwitchoverTuning, 'stopMarginMs'>> = DEFAULT_SWITCHOVER_TUNING,
): number {
  if (i.realBytesPerSec === undefined || !(i.realBytesPerSec > 0) || i.dirtyBytesPerSec === undefined) return QEMU_MIN_DOWNTIME_LIMIT_MS;
  // the copy of what the guest dirties until the stop, at the share of the bandwidth the final copy counts on
  const stopCopyMs = qemuAgentStopCopyMs(i.dirtyBytesPerSec, i.realBytesPerSec, tuning.stopMarginMs ?? DEFAULT_SWITCHOVER_TUNING.stopMarginMs);
  const budgetMs = i.limitMs - tuning.reserveMs - stopCopyMs / tuning.bandwidthMargin;
  if (budgetMs <= 0) return QEMU_MIN_DOWNTIME_LIMIT_MS;
  // QEMU has no figure yet (mbps 0 before its first window): it would not switch anyway; hand it the budget
  const scale = i.qemuPeakBytesPerSec > 0 ? (i.realBytesPerSec * tuning.bandwidthMargin) / i.qemuPeakBytesPerSec : tuning.bandwidthMargin;
  return Math.max(QEMU_MIN_DOWNTIME_LIMIT_MS, Math.min(i.limitMs, Math.floor(budgetMs * scale)));
}

/**
 * Whether QEMU 7.2 switches over at its next check, as the last `query-migrate` after a dirty-bitmap sync
 * shows it: nothing pending, or less than its own bandwidth figure (bytes/s) × the `downtime-limit` it holds.
 * That is its own test (reference/qemu-migration.md §3), which it applies at every iteration: an idle guest's
 * stream, whose first pass left next to nothing, stops the guest a millisecond or two after that pass ends.
 */
export function qemuSwitchesOverNext(pendingBytes: number, qemuBytesPerSec: number, qemuLimitMs: number): boolean {
  return pendingBytes === 0 || pendingBytes < (qemuBytesPerSec * qemuLimitMs) / 1000;
}
