import fc from 'fast-check';
import { BYTES_PER_GIB, BYTES_PER_MIB, qemuAgentCopyBudgetMs, qemuAgentLimitForBudgetMs, qemuAgentStopCopyMs } from './constants';
import { analyticPrecopy } from './precopy-model';
import { type PredictionInputs, convergingDowntimeLimitMs, predict } from './predict';
import { resolveMigrationPolicy } from './schemas';

const MiB = BYTES_PER_MIB;
/** No overheads: the hand-computed figures are the bare geometric series (as test-params' `bare`). */
const bareInputs = (p: Partial<PredictionInputs>): PredictionInputs => ({
  memoryBytes: BYTES_PER_GIB,
  dirtyRateBytesPerSec: 0,
  linkBandwidthBytesPerSec: 100 * MiB,
  passOverheadMs: 0,
  deviceStateBytes: 0,
  switchoverFixedMs: 0,
  ...p,
});

describe('predict', () => {
  describe('given an idle 1 GiB guest on a 128 MiB/s link', () => {
    it('when predicted, then one pass of 8 s, no pause beyond the device state, converging, no lever', () => {
      const a = predict(bareInputs({ linkBandwidthBytesPerSec: 128 * MiB }));
      expect(a.predicted).toEqual({
        totalTimeMs: 8000,
        downtimeMs: 0,
        passes: 1,
        bytesTransferred: BYTES_PER_GIB,
        converges: true,
        outcome: 'converged',
        switchover: 'precopy',
        throttlePct: 0,
      });
      expect(a.levers).toEqual([]);
    });

    it('when the control plane takes 300 ms around it and 40 ms of the pause, then those are added to the total and the downtime', () => {
      const a = predict(bareInputs({ linkBandwidthBytesPerSec: 128 * MiB, setupMs: 300, switchoverFixedMs: 40 }));
      expect(a.predicted).toMatchObject({ totalTimeMs: 8340, downtimeMs: 40, passes: 1 });
    });
  });

  describe('given r = 0.5 (50 MiB/s dirtied, 100 MiB/s link, 300 ms)', () => {
    it('when predicted, then it is the closed form: 6 passes, 160 ms, 20.32 s, 2032 MiB', () => {
      const a = predict(bareInputs({ dirtyRateBytesPerSec: 50 * MiB }));
      const closed = analyticPrecopy({ memoryBytes: BYTES_PER_GIB, dirtyRateBytesPerSec: 50 * MiB, bandwidthBytesPerSec: 100 * MiB, passOverheadMs: 0, deviceStateBytes: 0, switchoverFixedMs: 0 });
      expect(a.predicted).toMatchObject({ passes: 6, converges: true, switchover: 'precopy' });
      expect(a.predicted.totalTimeMs).toBeCloseTo(closed.totalTimeMs, 6);
      expect(a.predicted.downtimeMs).toBeCloseTo(160, 6);
      expect(a.predicted.bytesTransferred).toBeCloseTo(2032 * MiB, 0);
    });

    it('when the policy caps the pre-copy at 50 MiB/s, then r = 1 and it cannot converge; the switchover would run at the link speed', () => {
      const a = predict(bareInputs({ dirtyRateBytesPerSec: 50 * MiB }), { bandwidthMiBps: 50, autoConverge: false });
      expect(a.predicted).toMatchObject({ converges: false, switchover: 'none', downtimeMs: 0 });
      const limit = a.levers.find((l) => l.lever === 'downtime-limit')!;
      // the remaining plateaus at M = 1 GiB; at the capped 50 MiB/s that is 20.48 s, + 10% margin
      expect(limit.policy.downtimeLimitMs).toBe(22_528);
      // ... but the final copy runs at the link's 100 MiB/s: a 10.24 s pause, not 20 s
      expect(limit.predicted.downtimeMs).toBeCloseTo(10_240, 6);
    });
  });

  describe('given a guest dirtying 150 MiB/s of all its memory on a 100 MiB/s link, no lever in the policy', () => {
    const inputs = bareInputs({ dirtyRateBytesPerSec: 150 * MiB });
    const a = predict(inputs, { autoConverge: false, postCopy: false });

    it('then it does not converge, and says why (the policy gives up)', () => {
      expect(a.predicted).toMatchObject({ converges: false, outcome: 'aborted', switchover: 'none', downtimeMs: 0 });
      expect(a.predicted.reason).toMatch(/timeout/);
    });

    it('then each of the three levers would make it converge, each with its cost', () => {
      expect(a.levers.map((l) => l.lever)).toEqual(['auto-converge', 'downtime-limit', 'post-copy']);
      for (const l of a.levers) expect(l.predicted.converges).toBe(true);
      const [throttle, limit, postcopy] = a.levers;
      expect(throttle!.policy).toEqual({ autoConverge: true });
      expect(throttle!.predicted.throttlePct).toBeGreaterThanOrEqual(40); // r = 1.5 needs D' < B: more than 33%
      expect(throttle!.cost).toContain(`${throttle!.predicted.throttlePct}%`);
      expect(limit!.policy).toEqual({ downtimeLimitMs: 11_264 }); // 1 GiB at 100 MiB/s = 10.24 s, + 10%
      expect(limit!.predicted.downtimeMs).toBeCloseTo(10_240, 6);
      expect(postcopy!.policy).toEqual({ postCopy: true });
      expect(postcopy!.predicted).toMatchObject({ switchover: 'postcopy', downtimeMs: 0 });
      expect(postcopy!.cost).toContain('the VM is lost');
    });

    it('when auto-converge is allowed, then it converges under the policy itself and no lever is offered', () => {
      const b = predict(inputs, { autoConverge: true });
      expect(b.predicted).toMatchObject({ converges: true, switchover: 'precopy' });
      expect(b.predicted.throttlePct).toBeGreaterThan(0);
      expect(b.levers).toEqual([]);
    });
  });

  describe('convergingDowntimeLimitMs', () => {
    it('given a working set of 600 MiB at r ≥ 1 on 100 MiB/s, then 6.6 s; given 6 GiB on 100 MiB/s, then beyond 60 s: null', () => {
      const policy = resolveMigrationPolicy({ memoryBytes: BYTES_PER_GIB });
      expect(convergingDowntimeLimitMs(bareInputs({ dirtyRateBytesPerSec: 200 * MiB, workingSetBytes: 600 * MiB }), policy)).toBe(6600);
      const big = bareInputs({ memoryBytes: 6 * BYTES_PER_GIB, dirtyRateBytesPerSec: 200 * MiB });
      expect(convergingDowntimeLimitMs(big, resolveMigrationPolicy({ memoryBytes: 6 * BYTES_PER_GIB }))).toBeNull();
    });
  });

  describe('any inputs and policy', () => {
    const inputsArb = fc.record({
      memMiB: fc.integer({ min: 64, max: 8192 }),
      dirtyMiBps: fc.integer({ min: 0, max: 2000 }),
      wsPct: fc.integer({ min: 1, max: 100 }),
      linkMiBps: fc.integer({ min: 10, max: 5000 }),
      overheadMs: fc.constantFrom(0, 1, 5),
    });
    const policyArb = fc.record({
      autoConverge: fc.boolean(),
      postCopy: fc.boolean(),
      downtimeLimitMs: fc.constantFrom(50, 300, 1000),
      bandwidthMiBps: fc.constantFrom(undefined, 64, 512),
    });
    const toInputs = (i: { memMiB: number; dirtyMiBps: number; wsPct: number; linkMiBps: number; overheadMs: number }): PredictionInputs => ({
      memoryBytes: i.memMiB * MiB,
      dirtyRateBytesPerSec: i.dirtyMiBps * MiB,
      workingSetBytes: Math.round((i.memMiB * MiB * i.wsPct) / 100),
      linkBandwidthBytesPerSec: i.linkMiBps * MiB,
      passOverheadMs: i.overheadMs,
    });

    it('then the answer is deterministic, at least one copy of memory long, and every lever offered converges', () => {
      fc.assert(
        fc.property(inputsArb, policyArb, (i, pa) => {
          const inputs = toInputs(i);
          const policy = { autoConverge: pa.autoConverge, postCopy: pa.postCopy, downtimeLimitMs: pa.downtimeLimitMs, ...(pa.bandwidthMiBps ? { bandwidthMiBps: pa.bandwidthMiBps } : {}) };
          const a = predict(inputs, policy);
          expect(predict(inputs, policy)).toEqual(a);
          const preCopyBytesPerSec = Math.min(inputs.linkBandwidthBytesPerSec, (pa.bandwidthMiBps ?? Infinity) * MiB);
          // pass 1 sends all of memory (cut short only by an abort before its end)
          if (a.predicted.converges) expect(a.predicted.totalTimeMs).toBeGreaterThanOrEqual((inputs.memoryBytes / preCopyBytesPerSec) * 1000 - 1e-6);
          if (a.predicted.converges) expect(a.levers).toEqual([]);
          else expect(a.predicted.reason).toBeTruthy();
          for (const l of a.levers) {
            expect(l.predicted.converges).toBe(true);
            expect(l.cost.length).toBeGreaterThan(20);
          }
          // a lever is only offered when the policy does not already pull it
          for (const l of a.levers) if (l.lever === 'post-copy') expect(pa.postCopy).toBe(false);
          for (const l of a.levers) if (l.lever === 'auto-converge') expect(pa.autoConverge).toBe(false);
          for (const l of a.levers) if (l.lever === 'downtime-limit') expect(l.policy.downtimeLimitMs).toBeGreaterThan(pa.downtimeLimitMs);
        }),
        { numRuns: 300 },
      );
    });

    it('given a policy that never acts, when the closed form converges, then the prediction is the closed form', () => {
      fc.assert(
        fc.property(inputsArb, (i) => {
          const inputs = toInputs(i);
          const closed = analyticPrecopy({
            memoryBytes: inputs.memoryBytes,
            dirtyRateBytesPerSec: inputs.dirtyRateBytesPerSec,
            workingSetBytes: inputs.workingSetBytes,
            bandwidthBytesPerSec: inputs.linkBandwidthBytesPerSec,
            passOverheadMs: inputs.passOverheadMs,
          });
          fc.pre(closed.converged);
          const a = predict(inputs, { autoConverge: false, postCopy: false, completionTimeoutPerGiBSec: 3600, progressTimeoutSec: 3600 });
          expect(a.predicted.passes).toBe(closed.passes);
          expect(a.predicted.totalTimeMs).toBeCloseTo(closed.totalTimeMs, 3);
          expect(a.predicted.downtimeMs).toBeCloseTo(closed.downtimeMs, 6);
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe("the qemu agent's copy budget", () => {
  it('given a limit, then the budget is the limit less the 25 ms reserve at 0.8 of the bandwidth, and the inverse gives a limit at least that budget back', () => {
    expect(qemuAgentCopyBudgetMs(300)).toBe(220);
    expect(qemuAgentCopyBudgetMs(20)).toBe(1);
    for (const budget of [1, 50, 220, 999]) expect(qemuAgentCopyBudgetMs(qemuAgentLimitForBudgetMs(budget))).toBeGreaterThanOrEqual(budget);
    expect(qemuAgentLimitForBudgetMs(220)).toBe(300);
  });

  it('given a dirtying guest, then the copy of what it dirties during the 250 ms stop margin comes off the budget, and the inverse adds it back', () => {
    // 256 MiB/s for 250 ms is 64 MiB: 62.5 ms at 1 GiB/s
    const stop = qemuAgentStopCopyMs(256 * BYTES_PER_MIB, 1024 * BYTES_PER_MIB);
    expect(stop).toBe(62.5);
    expect(qemuAgentCopyBudgetMs(300, stop)).toBe(157);
    expect(qemuAgentCopyBudgetMs(300, 1_000)).toBe(1);
    expect(qemuAgentStopCopyMs(256 * BYTES_PER_MIB, 0)).toBe(0);
    for (const budget of [1, 50, 157, 999]) {
      const limit = qemuAgentLimitForBudgetMs(budget, stop);
      expect(qemuAgentCopyBudgetMs(limit, stop)).toBeGreaterThanOrEqual(budget);
      if (budget > 1) expect(qemuAgentCopyBudgetMs(limit - 1, stop)).toBeLessThan(budget); // the least such limit (1 ms is the floor of any)
    }
  });
});
