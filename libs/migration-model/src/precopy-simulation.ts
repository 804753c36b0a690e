/**
 * Pre-copy, one pass at a time, on a virtual clock: the sim driver advances it in (scaled) real time
 * and a convergence policy acts between passes. Pure: no clock, no timers, no I/O. The caller says
 * what time it is (`advanceTo`), the simulation says what happened up to then.
 *
 * Typical driver loop:
 *   const sim = new PrecopySimulation(params);
 *   for (let t = sim.nextBoundaryMs(); t !== null; t = sim.nextBoundaryMs()) {
 *     await sleep((t - sim.nowMs) / timeScale);
 *     for (const e of sim.advanceTo(t)) if (e.type === 'pass-completed') apply(decideConvergence(sim.history, policy, t));
 *   }
 *
 * With no intervention it follows the same equations as `analyticPrecopy` (precopy-model.ts).
 * Interventions and when they take effect:
 *   - setThrottlePct: from the next pass (QEMU applies it at once; the model's granularity is a pass);
 *   - setDowntimeLimitMs: between passes, the last pass is re-tested at once; mid-pass, at its end;
 *   - switchToPostcopy: between passes, at once; mid-pass, at its end unless that pass converges;
 * "Between passes" is the instant of a boundary: right after `advanceTo(nextBoundaryMs())` returned
 * the pass, before the clock moves on (the next pass has started but has not run yet).
 *   - abort: at once (the pass in flight is cut; its bytes so far count as sent).
 */
import { MS_PER_SEC, QEMU_DEFAULT_MAX_THROTTLE_PCT } from './constants';
import {
  type MigrationOutcome,
  type MigrationResult,
  type PassSample,
  cannotConverge,
  dirtiedBytes,
  effectiveDirtyRate,
  expectedDowntimeMs,
  fitsDowntimeBudget,
  passDurationMs,
  postcopyCompletion,
  switchoverDowntimeMs,
} from './precopy-model';
import { type PrecopyParams, type PrecopyParamsInput, resolvePrecopyParams } from './schemas';

export interface PrecopySimulationOptions {
  /** Virtual time at which pass 1 starts (default 0). All times the simulation reports use this clock. */
  startMs?: number;
  /**
   * End with `not-converging` as soon as a pass ends and the remaining can never fit the budget with
   * the current throttle and limit (what `analyticPrecopy` does). Default false: like QEMU, keep
   * iterating (until maxPasses) and let a policy act.
   */
  stopWhenStalled?: boolean;
  /**
   * Like QEMU's pause-before-switchover: when pre-copy converges the guest is paused and the
   * simulation waits in `pre-switchover` for `continueSwitchover()`. The wait is downtime.
   */
  pauseBeforeSwitchover?: boolean;
}

export type SimulationPhase = 'precopy' | 'pre-switchover' | 'switchover' | 'postcopy' | 'completed' | 'failed';

export type SimulationEvent =
  | { type: 'pass-completed'; atMs: number; pass: PassSample }
  /** The guest is paused on the source; `mode` says whether the rest is a stop-and-copy or post-copy. */
  | { type: 'switchover-started'; atMs: number; mode: 'precopy' | 'postcopy'; remainingBytes: number }
  | { type: 'completed'; atMs: number; result: MigrationResult }
  | { type: 'failed'; atMs: number; result: MigrationResult };

/** A progress report at the current virtual time (contracts' MigrationProgress fields). */
export interface PrecopyProgress {
  phase: SimulationPhase;
  /** The pass in flight (or the last one). */
  pass: number;
  elapsedMs: number;
  transferredBytes: number;
  /** Estimate: what is still to send in this pass plus what the guest has dirtied meanwhile. */
  remainingBytes: number;
  percent: number;
  dirtyRateBytesPerSec: number;
  bandwidthBytesPerSec: number;
  expectedDowntimeMs: number;
  throttlePct: number;
  downtimeLimitMs: number;
}

interface PassInFlight {
  pass: number;
  startMs: number;
  endMs: number;
  toSendBytes: number;
  throttlePct: number;
  dirtyRateBytesPerSec: number;
}

interface Switchover {
  mode: 'precopy' | 'postcopy';
  pausedAtMs: number;
  /** Dirty bytes when pre-copy stopped. */
  remainingBytes: number;
  /** Set once the switchover runs (immediately, or at continueSwitchover). */
  endMs?: number;
  downtimeMs?: number;
}

export class PrecopySimulation {
  readonly params: PrecopyParams;
  private readonly startMs: number;
  private readonly stopWhenStalled: boolean;
  private readonly pauseBeforeSwitchover: boolean;
  private now: number;
  private currentPhase: SimulationPhase = 'precopy';
  private throttle: number;
  private downtimeLimit: number;
  private postcopyRequested = false;
  private readonly passes: PassSample[] = [];
  private inFlight: PassInFlight | null = null;
  /** Dirty bytes at the last pass boundary (M before pass 1). */
  private remaining: number;
  /** Bytes sent by completed passes. */
  private sentBytes = 0;
  private switchover: Switchover | null = null;
  private finalResult: MigrationResult | null = null;

  constructor(params: PrecopyParamsInput, options: PrecopySimulationOptions = {}) {
    this.params = resolvePrecopyParams(params);
    this.startMs = options.startMs ?? 0;
    this.stopWhenStalled = options.stopWhenStalled ?? false;
    this.pauseBeforeSwitchover = options.pauseBeforeSwitchover ?? false;
    this.now = this.startMs;
    this.throttle = this.params.throttlePct;
    this.downtimeLimit = this.params.downtimeLimitMs;
    this.remaining = this.params.memoryBytes;
    this.startPass();
  }

  // ---- reading ----------------------------------------------------------------------------------

  get nowMs(): number {
    return this.now;
  }
  get phase(): SimulationPhase {
    return this.currentPhase;
  }
  /** Completed passes, oldest first: the input of `decideConvergence`. */
  get history(): readonly PassSample[] {
    return this.passes;
  }
  get throttlePct(): number {
    return this.throttle;
  }
  get downtimeLimitMs(): number {
    return this.downtimeLimit;
  }
  /** Set once the migration completed or failed. */
  get result(): MigrationResult | null {
    return this.finalResult;
  }
  get done(): boolean {
    return this.finalResult !== null;
  }

  /** Virtual time of the next thing that will happen by itself; null when done or waiting for the caller. */
  nextBoundaryMs(): number | null {
    switch (this.currentPhase) {
      case 'precopy':
        return this.inFlight!.endMs;
      case 'switchover':
      case 'postcopy':
        return this.switchover!.endMs!;
      case 'pre-switchover':
      case 'completed':
      case 'failed':
        return null;
      default: {
        const never: never = this.currentPhase;
        throw new Error(`unknown phase ${String(never)}`);
      }
    }
  }

  progress(): PrecopyProgress {
    const p = this.params;
    const last = this.passes[this.passes.length - 1];
    const base = {
      phase: this.currentPhase,
      elapsedMs: this.now - this.startMs,
      bandwidthBytesPerSec: p.bandwidthBytesPerSec,
      throttlePct: this.throttle,
      downtimeLimitMs: this.downtimeLimit,
    };
    if (this.currentPhase === 'precopy' && this.inFlight) {
      const f = this.inFlight;
      const sentSoFar = this.sentInFlight();
      const dirtied = dirtiedBytes(this.now - f.startMs, f.dirtyRateBytesPerSec, p.workingSetBytes);
      const remainingBytes = Math.max(0, f.toSendBytes - sentSoFar) + dirtied;
      const transferredBytes = this.sentBytes + sentSoFar;
      return {
        ...base,
        pass: f.pass,
        transferredBytes,
        remainingBytes,
        percent: percentOf(transferredBytes, remainingBytes),
        dirtyRateBytesPerSec: f.dirtyRateBytesPerSec,
        expectedDowntimeMs: expectedDowntimeMs(remainingBytes, p.bandwidthBytesPerSec),
      };
    }
    const transferredBytes = this.finalResult?.bytesTransferred ?? this.sentBytes;
    const remainingBytes = this.finalResult?.completed ? 0 : this.remaining;
    return {
      ...base,
      pass: last?.pass ?? 0,
      transferredBytes,
      remainingBytes,
      percent: percentOf(transferredBytes, remainingBytes),
      dirtyRateBytesPerSec: last?.dirtyRateBytesPerSec ?? 0,
      expectedDowntimeMs: expectedDowntimeMs(remainingBytes, p.bandwidthBytesPerSec),
    };
  }

  // ---- time -------------------------------------------------------------------------------------

  /**
   * Moves the virtual clock to `nowMs` and returns what happened up to then, in order. Several pass
   * boundaries may be crossed in one call; to act between passes, advance to `nextBoundaryMs()`.
   */
  advanceTo(nowMs: number): SimulationEvent[] {
    if (!(nowMs >= this.now)) throw new RangeError(`time goes forward only: ${nowMs} < ${this.now}`);
    const events: SimulationEvent[] = [];
    for (let b = this.nextBoundaryMs(); b !== null && b <= nowMs; b = this.nextBoundaryMs()) {
      this.now = b;
      this.onBoundary(events);
    }
    this.now = nowMs;
    return events;
  }

  /** Advances to the next boundary (the end of the pass in flight, or of the switchover). */
  step(): SimulationEvent[] {
    const b = this.nextBoundaryMs();
    return b === null ? [] : this.advanceTo(b);
  }

  /** Steps until done (or until it waits in pre-switchover); no policy acts. */
  runToEnd(): SimulationEvent[] {
    const events: SimulationEvent[] = [];
    while (this.nextBoundaryMs() !== null) events.push(...this.step());
    return events;
  }

  // ---- interventions ----------------------------------------------------------------------------

  /**
   * Auto-converge throttle for the passes that start from now on. Called between passes (right at a
   * boundary, before any time has passed in the new pass), it applies to that next pass.
   */
  setThrottlePct(percent: number): void {
    this.requirePhase('precopy', 'setThrottlePct');
    if (!(percent >= 0 && percent <= QEMU_DEFAULT_MAX_THROTTLE_PCT)) {
      throw new RangeError(`throttle ${percent}% is outside 0..${QEMU_DEFAULT_MAX_THROTTLE_PCT}`);
    }
    this.throttle = percent;
    const f = this.inFlight;
    if (f && this.now === f.startMs) {
      f.throttlePct = percent;
      f.dirtyRateBytesPerSec = effectiveDirtyRate(this.params.dirtyRateBytesPerSec, percent);
    }
  }

  /**
   * Downtime limit for the next switchover test. Between passes, the last pass is tested again at
   * once (QEMU tests continually), so a raise that makes it fit starts the switchover now; the
   * returned events say so. Otherwise it applies at the end of the pass in flight.
   */
  setDowntimeLimitMs(limitMs: number): SimulationEvent[] {
    this.requirePhase('precopy', 'setDowntimeLimitMs');
    if (!(limitMs > 0 && Number.isFinite(limitMs))) throw new RangeError(`downtime limit ${limitMs} ms must be > 0`);
    this.downtimeLimit = limitMs;
    const events: SimulationEvent[] = [];
    if (this.betweenPasses() && fitsDowntimeBudget(this.remaining, this.params.bandwidthBytesPerSec, limitMs)) {
      this.inFlight = null;
      this.beginSwitchover('precopy', events);
    }
    return events;
  }

  /**
   * Switch to post-copy. Between passes (after at least one), it happens now; the returned events say
   * so. During a pass, at its end (unless that pass converges).
   */
  switchToPostcopy(): SimulationEvent[] {
    this.requirePhase('precopy', 'switchToPostcopy');
    const events: SimulationEvent[] = [];
    if (this.betweenPasses()) {
      this.inFlight = null;
      this.beginSwitchover('postcopy', events);
    } else {
      this.postcopyRequested = true;
    }
    return events;
  }

  get postcopyPending(): boolean {
    return this.postcopyRequested;
  }

  /**
   * Cancels now (like `migrate_cancel`): the guest keeps running on the source. Allowed during
   * pre-copy and while held in pre-switchover (the guest resumes on the source); not once the
   * switchover copy or post-copy runs.
   */
  abort(reason: string): SimulationEvent[] {
    if (this.currentPhase !== 'precopy' && this.currentPhase !== 'pre-switchover') {
      throw new Error(`cannot abort in phase ${this.currentPhase}`);
    }
    const partial = this.currentPhase === 'precopy' ? this.sentInFlight() : 0;
    this.sentBytes += partial;
    this.inFlight = null;
    return [this.fail('aborted', reason)];
  }

  /** Releases a switchover held by `pauseBeforeSwitchover` (QEMU's migrate-continue). */
  continueSwitchover(): void {
    this.requirePhase('pre-switchover', 'continueSwitchover');
    this.runSwitchover();
  }

  // ---- internals --------------------------------------------------------------------------------

  /** Right at a pass boundary: a pass has ended and no time has passed in the next one. */
  private betweenPasses(): boolean {
    return this.inFlight !== null && this.passes.length > 0 && this.now === this.inFlight.startMs;
  }

  private requirePhase(phase: SimulationPhase, what: string): void {
    if (this.currentPhase !== phase) throw new Error(`${what} needs phase ${phase}, not ${this.currentPhase}`);
  }

  private startPass(): void {
    const p = this.params;
    const pass = this.passes.length + 1;
    const toSendBytes = this.remaining;
    this.inFlight = {
      pass,
      startMs: this.now,
      endMs: this.now + passDurationMs(toSendBytes, p.bandwidthBytesPerSec, p.passOverheadMs),
      toSendBytes,
      throttlePct: this.throttle,
      dirtyRateBytesPerSec: effectiveDirtyRate(p.dirtyRateBytesPerSec, this.throttle),
    };
  }

  /** Bytes of the pass in flight sent by now: the overhead comes first, then the copy. */
  private sentInFlight(): number {
    const f = this.inFlight;
    if (!f) return 0;
    const copyingMs = this.now - f.startMs - this.params.passOverheadMs;
    const sent = (Math.max(0, copyingMs) / MS_PER_SEC) * this.params.bandwidthBytesPerSec;
    return Math.min(f.toSendBytes, sent);
  }

  private onBoundary(events: SimulationEvent[]): void {
    switch (this.currentPhase) {
      case 'precopy':
        this.onPassEnd(events);
        return;
      case 'switchover':
      case 'postcopy':
        events.push(this.complete());
        return;
      default:
        throw new Error(`no boundary in phase ${this.currentPhase}`);
    }
  }

  private onPassEnd(events: SimulationEvent[]): void {
    const p = this.params;
    const f = this.inFlight!;
    const duration = f.endMs - f.startMs;
    const remainingBytes = dirtiedBytes(duration, f.dirtyRateBytesPerSec, p.workingSetBytes);
    const sample: PassSample = {
      pass: f.pass,
      startMs: f.startMs - this.startMs,
      endMs: f.endMs - this.startMs,
      bytesSent: f.toSendBytes,
      remainingBytes,
      dirtyRateBytesPerSec: f.dirtyRateBytesPerSec,
      bandwidthBytesPerSec: p.bandwidthBytesPerSec,
      expectedDowntimeMs: expectedDowntimeMs(remainingBytes, p.bandwidthBytesPerSec),
      throttlePct: f.throttlePct,
      downtimeLimitMs: this.downtimeLimit,
    };
    this.passes.push(sample);
    this.sentBytes += f.toSendBytes;
    this.remaining = remainingBytes;
    this.inFlight = null;
    events.push({ type: 'pass-completed', atMs: this.now, pass: sample });

    if (fitsDowntimeBudget(remainingBytes, p.bandwidthBytesPerSec, this.downtimeLimit)) {
      this.beginSwitchover('precopy', events);
    } else if (this.postcopyRequested) {
      this.beginSwitchover('postcopy', events);
    } else if (this.stopWhenStalled && cannotConverge(p, this.throttle, this.downtimeLimit)) {
      events.push(this.fail('not-converging'));
    } else if (f.pass >= p.maxPasses) {
      events.push(this.fail('max-passes'));
    } else {
      this.startPass();
    }
  }

  private beginSwitchover(mode: 'precopy' | 'postcopy', events: SimulationEvent[]): void {
    this.switchover = { mode, pausedAtMs: this.now, remainingBytes: this.remaining };
    events.push({ type: 'switchover-started', atMs: this.now, mode, remainingBytes: this.remaining });
    if (this.pauseBeforeSwitchover) this.currentPhase = 'pre-switchover';
    else this.runSwitchover();
  }

  private runSwitchover(): void {
    const s = this.switchover!;
    const p = this.params;
    // held: time spent in pre-switchover (0 unless pauseBeforeSwitchover). Added, not subtracted from
    // absolute times, so that a 0.1 ms downtime stays exact on a clock that reads 10^9 ms.
    const heldMs = this.now - s.pausedAtMs;
    if (s.mode === 'precopy') {
      const copyMs = switchoverDowntimeMs(s.remainingBytes, p);
      s.downtimeMs = heldMs + copyMs;
      s.endMs = this.now + copyMs;
      this.currentPhase = 'switchover';
    } else {
      const pc = postcopyCompletion(s.remainingBytes, p);
      s.downtimeMs = heldMs + pc.downtimeMs;
      s.endMs = this.now + pc.downtimeMs + pc.pullTimeMs;
      this.currentPhase = 'postcopy';
    }
  }

  private precopyTimeMs(): number {
    const last = this.passes[this.passes.length - 1];
    return last ? last.endMs : this.now - this.startMs;
  }

  private complete(): SimulationEvent {
    const s = this.switchover!;
    const p = this.params;
    const postcopy = s.mode === 'postcopy';
    const result = this.baseResult(postcopy ? 'postcopy' : 'converged');
    result.downtimeMs = s.downtimeMs!;
    result.totalTimeMs = s.endMs! - this.startMs;
    result.bytesTransferred = this.sentBytes + s.remainingBytes + p.deviceStateBytes;
    if (postcopy) {
      result.postcopyBytes = s.remainingBytes;
      result.postcopyTimeMs = postcopyCompletion(s.remainingBytes, p).pullTimeMs;
    }
    this.finalResult = result;
    this.currentPhase = 'completed';
    return { type: 'completed', atMs: this.now, result };
  }

  private fail(outcome: Exclude<MigrationOutcome, 'converged' | 'postcopy'>, reason?: string): SimulationEvent {
    const result = this.baseResult(outcome);
    result.totalTimeMs = this.now - this.startMs;
    result.bytesTransferred = this.sentBytes;
    if (reason !== undefined) result.abortReason = reason;
    this.finalResult = result;
    this.currentPhase = 'failed';
    this.switchover = null;
    return { type: 'failed', atMs: this.now, result };
  }

  private baseResult(outcome: MigrationOutcome): MigrationResult {
    const completed = outcome === 'converged' || outcome === 'postcopy';
    return {
      outcome,
      converged: outcome === 'converged',
      completed,
      passes: this.passes.length,
      passResults: [...this.passes],
      precopyTimeMs: this.precopyTimeMs(),
      downtimeMs: 0,
      totalTimeMs: 0,
      bytesTransferred: 0,
      remainingBytes: this.remaining,
      expectedDowntimeMs: expectedDowntimeMs(this.remaining, this.params.bandwidthBytesPerSec),
      postcopyBytes: 0,
      postcopyTimeMs: 0,
      throttlePct: this.throttle,
      downtimeLimitMs: this.downtimeLimit,
    };
  }
}

function percentOf(transferred: number, remaining: number): number {
  const total = transferred + remaining;
  return total === 0 ? 100 : Math.min(100, (transferred / total) * 100);
}
