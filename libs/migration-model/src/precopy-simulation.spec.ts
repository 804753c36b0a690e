import fc from 'fast-check';
import { BYTES_PER_GIB, BYTES_PER_MIB } from './constants';
import { analyticPrecopy } from './precopy-model';
import { PrecopySimulation, type SimulationEvent } from './precopy-simulation';
import type { PrecopyParamsInput } from './schemas';

import { bare } from './test-params';

const MiB = BYTES_PER_MIB;

const halfRate = bare({ dirtyRateBytesPerSec: 50 * MiB }); // r = 0.5: 1024, 512, … 32 sent; 16 MiB left
const types = (events: SimulationEvent[]) => events.map((e) => e.type);

describe('PrecopySimulation', () => {
  describe('given the hand-computed cases', () => {
    it('when an idle guest is stepped, then one pass of M/B, then the switchover, then completed', () => {
      const sim = new PrecopySimulation(bare({ memoryBytes: BYTES_PER_GIB, bandwidthBytesPerSec: 128 * MiB }));
      expect(sim.nextBoundaryMs()).toBe(8000);
      const events = sim.runToEnd();
      expect(types(events)).toEqual(['pass-completed', 'switchover-started', 'completed']);
      expect(sim.result).toMatchObject({ outcome: 'converged', passes: 1, totalTimeMs: 8000, downtimeMs: 0, bytesTransferred: BYTES_PER_GIB });
      expect(sim.phase).toBe('completed');
      expect(sim.nextBoundaryMs()).toBeNull();
    });

    it('when r = 0.5, then the passes are M, M/2, M/4 … and the totals are the hand figures', () => {
      const sim = new PrecopySimulation(halfRate);
      sim.runToEnd();
      const r = sim.result!;
      expect(r.passResults.map((p) => p.bytesSent / MiB)).toEqual([1024, 512, 256, 128, 64, 32]);
      expect(r.passes).toBe(6);
      expect(r.totalTimeMs).toBeCloseTo(20_320, 6);
      expect(r.downtimeMs).toBeCloseTo(160, 6);
      expect(r.bytesTransferred).toBeCloseTo(2032 * MiB, 0);
    });

    it('when started at a later virtual time, then events use that clock and samples count from the start', () => {
      const sim = new PrecopySimulation(halfRate, { startMs: 1_000_000 });
      const events = sim.advanceTo(1_000_000 + 10_240);
      expect(events[0]).toMatchObject({ type: 'pass-completed', atMs: 1_010_240, pass: { startMs: 0, endMs: 10_240 } });
    });
  });

  describe('given many random parameter sets and no policy', () => {
    const params = fc.record({
      memoryBytes: fc.integer({ min: 64, max: 65_536 }).map((m) => m * MiB),
      workingSetFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      bandwidthBytesPerSec: fc.integer({ min: 10, max: 10_240 }).map((b) => b * MiB),
      dirtyRatio: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 2, noNaN: true })),
      switchoverFactor: fc.oneof(fc.constant(1), fc.double({ min: 1, max: 4, noNaN: true })),
      downtimeLimitMs: fc.integer({ min: 1, max: 5000 }),
      maxPasses: fc.integer({ min: 1, max: 300 }),
      passOverheadMs: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 50, noNaN: true })),
      deviceStateBytes: fc.integer({ min: 0, max: 4 * MiB }),
      switchoverFixedMs: fc.double({ min: 0, max: 10, noNaN: true }),
      throttlePct: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 99 })),
    });
    type Gen = typeof params extends fc.Arbitrary<infer T> ? T : never;
    const toInput = (g: Gen): PrecopyParamsInput => ({
      memoryBytes: g.memoryBytes,
      workingSetBytes: Math.floor(g.memoryBytes * g.workingSetFraction),
      bandwidthBytesPerSec: g.bandwidthBytesPerSec,
      switchoverBandwidthBytesPerSec: g.bandwidthBytesPerSec * g.switchoverFactor,
      dirtyRateBytesPerSec: g.bandwidthBytesPerSec * g.dirtyRatio,
      downtimeLimitMs: g.downtimeLimitMs,
      maxPasses: g.maxPasses,
      passOverheadMs: g.passOverheadMs,
      deviceStateBytes: g.deviceStateBytes,
      switchoverFixedMs: g.switchoverFixedMs,
      throttlePct: g.throttlePct,
    });
    const within = (actual: number, expected: number, rel: number) =>
      Math.abs(actual - expected) <= rel * Math.max(Math.abs(expected), 1e-9);

    it('when simulated pass by pass (stopWhenStalled), then passes, outcome, total time, downtime and bytes agree with analyticPrecopy within 5%', () => {
      fc.assert(
        fc.property(params, (g) => {
          const input = toInput(g);
          const analytic = analyticPrecopy(input);
          const sim = new PrecopySimulation(input, { stopWhenStalled: true });
          sim.runToEnd();
          const s = sim.result!;
          expect(s.outcome).toBe(analytic.outcome);
          expect(s.passes).toBe(analytic.passes);
          for (const key of ['totalTimeMs', 'downtimeMs', 'bytesTransferred', 'precopyTimeMs', 'remainingBytes'] as const) {
            // the brief's tolerance is 5%; the two forms are the same equations, so they agree far closer
            if (!within(s[key], analytic[key], 0.05)) throw new Error(`${key}: sim ${s[key]} vs analytic ${analytic[key]}`);
            if (!within(s[key], analytic[key], 1e-6)) throw new Error(`${key} (1e-6): sim ${s[key]} vs analytic ${analytic[key]}`);
          }
        }),
        { numRuns: 1000 },
      );
    });

    it('when not told to stop on a stall, then a non-converging run continues until maxPasses (like QEMU)', () => {
      const hotParams = params.map((g) => ({ ...g, dirtyRatio: 1.05 + g.dirtyRatio, workingSetFraction: 1, throttlePct: 0, downtimeLimitMs: 1 }));
      fc.assert(
        fc.property(hotParams, (g) => {
          const input = toInput(g);
          const analytic = analyticPrecopy(input);
          expect(analytic.outcome).toBe('not-converging');
          const sim = new PrecopySimulation(input);
          sim.runToEnd();
          expect(sim.result).toMatchObject({ outcome: 'max-passes', passes: g.maxPasses });
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('given a running simulation and the clock', () => {
    it('when advanced past several boundaries at once, then it reports every pass in order', () => {
      const sim = new PrecopySimulation(halfRate);
      const events = sim.advanceTo(19_000); // passes end at 10240, 15360, 17920, 19200 …
      expect(events.map((e) => (e.type === 'pass-completed' ? e.pass.pass : e.type))).toEqual([1, 2, 3]);
      expect(sim.nowMs).toBe(19_000);
      expect(sim.nextBoundaryMs()).toBeCloseTo(19_200, 6);
    });

    it('when asked to go back in time, then it refuses', () => {
      const sim = new PrecopySimulation(halfRate);
      sim.advanceTo(100);
      expect(() => sim.advanceTo(50)).toThrow(RangeError);
    });

    it('when asked for progress mid-pass, then it reports bytes sent so far and the dirty estimate', () => {
      const sim = new PrecopySimulation(halfRate);
      sim.advanceTo(5120); // half of pass 1: 512 MiB sent, 256 MiB dirtied
      expect(sim.progress()).toMatchObject({
        phase: 'precopy',
        pass: 1,
        elapsedMs: 5120,
        transferredBytes: 512 * MiB,
        remainingBytes: 768 * MiB,
        dirtyRateBytesPerSec: 50 * MiB,
        bandwidthBytesPerSec: 100 * MiB,
        throttlePct: 0,
        downtimeLimitMs: 300,
      });
      expect(sim.progress().percent).toBeCloseTo(40, 9);
      expect(sim.progress().expectedDowntimeMs).toBeCloseTo(7680, 6);
    });

    it('when completed, then progress says 100% and nothing remains', () => {
      const sim = new PrecopySimulation(halfRate);
      sim.runToEnd();
      expect(sim.progress()).toMatchObject({ phase: 'completed', pass: 6, remainingBytes: 0, percent: 100 });
    });
  });

  describe('given a guest that never converges on its own (r = 1.2, whole memory dirtied)', () => {
    const hot = bare({ dirtyRateBytesPerSec: 120 * MiB, maxPasses: 50 });

    it('when the throttle is raised between passes, then the next pass dirties at the throttled rate and it converges', () => {
      const sim = new PrecopySimulation(hot);
      sim.step(); // pass 1: 1024 MiB sent, whole memory dirty again
      expect(sim.history[0]).toMatchObject({ remainingBytes: 1024 * MiB, throttlePct: 0 });
      sim.setThrottlePct(75); // 30 MiB/s: r = 0.3
      sim.runToEnd();
      const r = sim.result!;
      expect(r.passResults[1]).toMatchObject({ throttlePct: 75, dirtyRateBytesPerSec: 30 * MiB });
      expect(r.passResults[1]!.remainingBytes / MiB).toBeCloseTo(307.2, 9);
      expect(r).toMatchObject({ outcome: 'converged', throttlePct: 75 });
      // 1024 → 307.2 → 92.16 → 27.648 (≤ 30 MiB budget)
      expect(r.passes).toBe(4);
    });

    it('when the throttle is changed mid-pass, then the pass in flight keeps its rate', () => {
      const sim = new PrecopySimulation(hot);
      sim.advanceTo(100);
      sim.setThrottlePct(50);
      sim.step();
      expect(sim.history[0]).toMatchObject({ throttlePct: 0, dirtyRateBytesPerSec: 120 * MiB });
    });

    it('when the downtime limit is raised during a pass, then the switchover test at its end uses the new limit', () => {
      const sim = new PrecopySimulation(hot);
      sim.advanceTo(1);
      sim.setDowntimeLimitMs(11_000); // 1024 MiB at 100 MiB/s = 10.24 s
      const events = sim.step();
      expect(types(events)).toEqual(['pass-completed', 'switchover-started']);
      expect(sim.history[0]!.downtimeLimitMs).toBe(11_000);
      sim.runToEnd();
      expect(sim.result).toMatchObject({ outcome: 'converged', passes: 1, downtimeLimitMs: 11_000 });
      expect(sim.result!.downtimeMs).toBeCloseTo(10_240, 6);
    });

    it('when switched to post-copy between passes, then it switches at once: the pause is the device state only and the rest is pulled at Bs', () => {
      const sim = new PrecopySimulation({ ...hot, deviceStateBytes: 1 * MiB, switchoverFixedMs: 2 });
      sim.step();
      sim.step();
      const atSwitch = sim.switchToPostcopy();
      expect(atSwitch).toEqual([{ type: 'switchover-started', atMs: 20_480, mode: 'postcopy', remainingBytes: 1024 * MiB }]);
      expect(sim.phase).toBe('postcopy');
      const events = sim.runToEnd();
      expect(types(events)).toEqual(['completed']);
      const r = sim.result!;
      expect(r).toMatchObject({ outcome: 'postcopy', converged: false, completed: true, passes: 2, postcopyBytes: 1024 * MiB });
      expect(r.downtimeMs).toBeCloseTo(12, 9); // 1 MiB at 100 MiB/s + 2 ms
      expect(r.postcopyTimeMs).toBeCloseTo(10_240, 6);
      expect(r.totalTimeMs).toBeCloseTo(2 * 10_240 + 12 + 10_240, 6);
      expect(r.bytesTransferred).toBe(3 * 1024 * MiB + 1 * MiB);
      expect(sim.progress()).toMatchObject({ phase: 'completed', remainingBytes: 0 });
    });

    it('when post-copy is asked for mid-pass, then it happens at the end of that pass', () => {
      const sim = new PrecopySimulation(hot);
      sim.advanceTo(5000);
      expect(sim.switchToPostcopy()).toEqual([]);
      expect(sim.postcopyPending).toBe(true);
      const events = sim.step();
      expect(types(events)).toEqual(['pass-completed', 'switchover-started']);
      sim.runToEnd();
      expect(sim.result).toMatchObject({ outcome: 'postcopy', passes: 1 });
    });

    it('when post-copy is asked for before pass 1 ends, then pass 1 still runs (there is nothing to pull yet)', () => {
      const sim = new PrecopySimulation(hot);
      expect(sim.switchToPostcopy()).toEqual([]);
      sim.runToEnd();
      expect(sim.result).toMatchObject({ outcome: 'postcopy', passes: 1 });
    });

    it('when the downtime limit is raised between passes so that the last pass fits, then the switchover starts at once', () => {
      const sim = new PrecopySimulation(hot);
      sim.step();
      expect(sim.setDowntimeLimitMs(250)).toEqual([]); // 1024 MiB needs 10.24 s: still not
      const events = sim.setDowntimeLimitMs(10_240);
      expect(events).toEqual([{ type: 'switchover-started', atMs: 10_240, mode: 'precopy', remainingBytes: 1024 * MiB }]);
      sim.runToEnd();
      expect(sim.result).toMatchObject({ outcome: 'converged', passes: 1, downtimeLimitMs: 10_240 });
      expect(sim.result!.totalTimeMs).toBeCloseTo(20_480, 6);
    });

    it('when aborted mid-pass, then it fails at once with the partial bytes counted and no downtime', () => {
      const sim = new PrecopySimulation(hot);
      sim.advanceTo(12_800); // pass 2 started at 10240; 2560 ms in: 256 MiB sent
      const events = sim.abort('operator cancelled');
      expect(events).toEqual([expect.objectContaining({ type: 'failed', atMs: 12_800 })]);
      expect(sim.result).toMatchObject({
        outcome: 'aborted',
        completed: false,
        passes: 1,
        downtimeMs: 0,
        totalTimeMs: 12_800,
        bytesTransferred: 1280 * MiB,
        abortReason: 'operator cancelled',
      });
      expect(sim.nextBoundaryMs()).toBeNull();
      expect(() => sim.setThrottlePct(20)).toThrow();
      expect(() => sim.abort('again')).toThrow();
    });

    it('when nobody acts, then it runs to maxPasses and fails with max-passes', () => {
      const sim = new PrecopySimulation(hot);
      const events = sim.runToEnd();
      expect(events.at(-1)).toMatchObject({ type: 'failed', result: { outcome: 'max-passes', passes: 50 } });
    });

    it('when a throttle outside 0..99 or a non-positive limit is asked for, then it refuses', () => {
      const sim = new PrecopySimulation(hot);
      expect(() => sim.setThrottlePct(100)).toThrow(RangeError);
      expect(() => sim.setThrottlePct(-1)).toThrow(RangeError);
      expect(() => sim.setDowntimeLimitMs(0)).toThrow(RangeError);
    });
  });

  describe('given pauseBeforeSwitchover (QEMU pre-switchover, held for the saga)', () => {
    it('when pre-copy converges, then it waits paused, and the wait counts as downtime', () => {
      const sim = new PrecopySimulation(halfRate, { pauseBeforeSwitchover: true });
      const events = sim.runToEnd();
      expect(types(events).slice(-2)).toEqual(['pass-completed', 'switchover-started']);
      expect(sim.phase).toBe('pre-switchover');
      expect(sim.nextBoundaryMs()).toBeNull();
      const pausedAt = sim.nowMs;
      sim.advanceTo(pausedAt + 50); // the saga takes 50 ms between steps 5 and 7
      sim.continueSwitchover();
      sim.runToEnd();
      expect(sim.result!.downtimeMs).toBeCloseTo(50 + 160, 6);
      expect(sim.result!.totalTimeMs).toBeCloseTo(20_320 + 50, 6);
    });

    it('when aborted while held, then it fails and the guest stays on the source', () => {
      const sim = new PrecopySimulation(halfRate, { pauseBeforeSwitchover: true });
      sim.runToEnd();
      sim.abort('target failed');
      expect(sim.result).toMatchObject({ outcome: 'aborted', completed: false, downtimeMs: 0 });
    });

    it('when continueSwitchover is called outside pre-switchover, then it refuses', () => {
      expect(() => new PrecopySimulation(halfRate).continueSwitchover()).toThrow();
    });
  });
});
