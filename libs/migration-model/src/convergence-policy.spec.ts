import fc from 'fast-check';
import { BYTES_PER_GIB, BYTES_PER_MIB } from './constants';
import {
  ConvergenceAbortCode,
  type Decision,
  completionTimeoutMs,
  decideConvergence,
  downtimeSchedule,
  isNonConvergingPass,
  lastProgressMs,
  scheduledDowntimeLimitMs,
  trailingNonConvergingPasses,
} from './convergence-policy';
import type { PassSample } from './precopy-model';
import { type MigrationPolicyInput, resolveMigrationPolicy } from './schemas';

const MiB = BYTES_PER_MIB;
const GiB = BYTES_PER_GIB;
const BANDWIDTH = 100 * MiB; // 300 ms budget = 30 MiB

/** A 4 GiB guest: completion timeout 150 s/GiB × 4 = 600 s; progress timeout 150 s. */
const policyOf = (over: Partial<MigrationPolicyInput> = {}) => resolveMigrationPolicy({ memoryBytes: 4 * GiB, ...over });

interface PassSpec {
  sent: number; // MiB
  left: number; // MiB
  throttle?: number;
  limit?: number;
  ms?: number; // duration, default 1000
}
/** Builds a history of contiguous passes from (sent, left) pairs in MiB. */
function history(...specs: PassSpec[]): PassSample[] {
  let t = 0;
  return specs.map((s, i) => {
    const startMs = t;
    t += s.ms ?? 1000;
    return {
      pass: i + 1,
      startMs,
      endMs: t,
      bytesSent: s.sent * MiB,
      remainingBytes: s.left * MiB,
      dirtyRateBytesPerSec: 0,
      bandwidthBytesPerSec: BANDWIDTH,
      expectedDowntimeMs: ((s.left * MiB) / BANDWIDTH) * 1000,
      throttlePct: s.throttle ?? 0,
      downtimeLimitMs: s.limit ?? 300,
    };
  });
}
const hit = (throttle = 0, limit = 300): PassSpec => ({ sent: 1000, left: 900, throttle, limit }); // 90% > 50%
const calm = (throttle = 0, limit = 300): PassSpec => ({ sent: 1000, left: 400, throttle, limit }); // 40% ≤ 50%
const endOf = (h: PassSample[]) => h[h.length - 1]!.endMs;

describe('decideConvergence', () => {
  describe('rule 0: the last pass fits its limit', () => {
    it('given a last pass leaving 20 MiB (200 ms ≤ 300 ms), when asked, then continue: the switchover is happening', () => {
      const h = history({ sent: 4096, left: 20 });
      const d = decideConvergence(h, policyOf(), endOf(h));
      expect(d).toEqual({ action: 'continue', reason: expect.stringContaining('switching over') });
    });

    it('given it fits and the completion timeout has also passed, when asked, then converging wins (no abort)', () => {
      const h = history({ sent: 4096, left: 20, ms: 700_000 });
      expect(decideConvergence(h, policyOf(), 700_000).action).toBe('continue');
    });

    it('given it fits only the raised limit it was checked against, when asked, then continue', () => {
      const h = history({ sent: 4096, left: 50, limit: 600 });
      expect(decideConvergence(h, policyOf(), endOf(h)).action).toBe('continue');
    });
  });

  describe('rule 1: completion timeout (150 s/GiB × memory)', () => {
    it('given a 4 GiB guest, then the timeout is 600 s; for 512 MiB it is 75 s', () => {
      expect(completionTimeoutMs(policyOf())).toBe(600_000);
      expect(completionTimeoutMs(policyOf({ memoryBytes: 512 * MiB }))).toBe(75_000);
    });

    it('given 600 s elapsed and no post-copy, when asked, then abort with COMPLETION_TIMEOUT and a reason naming the figures', () => {
      const h = history(calm(), calm());
      const d = decideConvergence(h, policyOf(), 600_000);
      expect(d).toMatchObject({ action: 'abort', code: ConvergenceAbortCode.CompletionTimeout });
      expect(d.reason).toContain('600 s');
      expect(d.reason).toContain('150 s/GiB × 4 GiB');
    });

    it('given 600 s elapsed and post-copy allowed, when asked, then switch to post-copy instead of aborting (KubeVirt)', () => {
      const d = decideConvergence(history(calm()), policyOf({ postCopy: true }), 600_000);
      expect(d).toMatchObject({ action: 'switch-to-postcopy', reason: expect.stringContaining('instead of aborting') });
    });

    it('given a first pass still running at the timeout, when asked, then abort too', () => {
      expect(decideConvergence([], policyOf(), 600_000)).toMatchObject({ action: 'abort', code: 'COMPLETION_TIMEOUT' });
    });

    it('given 599.999 s elapsed, when asked, then no completion abort yet', () => {
      const d = decideConvergence(history(calm()), policyOf({ progressTimeoutSec: 3600 }), 599_999);
      expect(d.action).not.toBe('abort');
    });
  });

  describe('rule 2: progress timeout (no decrease of the remaining for 150 s)', () => {
    const plateau = history({ sent: 4096, left: 1000 }, { sent: 1000, left: 1000 }, { sent: 1000, left: 1000 });

    it('given the remaining last decreased at 1 s, when asked at 151 s, then abort with PROGRESS_TIMEOUT', () => {
      expect(lastProgressMs(plateau, 4 * GiB)).toBe(1000);
      const d = decideConvergence(plateau, policyOf({ autoConverge: false }), 151_000);
      expect(d).toMatchObject({ action: 'abort', code: ConvergenceAbortCode.ProgressTimeout });
      expect(d.reason).toContain('150 s');
    });

    it('given the same history, when asked at 150.999 s, then not yet', () => {
      expect(decideConvergence(plateau, policyOf({ autoConverge: false }), 150_999).action).not.toBe('abort');
    });

    it('given post-copy is allowed, when the progress timeout hits, then it still aborts (KubeVirt aborts on no progress)', () => {
      expect(decideConvergence(plateau, policyOf({ autoConverge: false, postCopy: true }), 151_000)).toMatchObject({ action: 'abort' });
    });

    it('given a new minimum at a later pass, then the progress clock restarts there', () => {
      const h = history({ sent: 4096, left: 1000 }, { sent: 1000, left: 1200 }, { sent: 1200, left: 999 });
      expect(lastProgressMs(h, 4 * GiB)).toBe(3000);
      expect(decideConvergence(h, policyOf({ autoConverge: false }), 152_000).action).not.toBe('abort');
    });

    it('given a longer configured progress timeout, then it is honoured', () => {
      expect(decideConvergence(plateau, policyOf({ autoConverge: false, progressTimeoutSec: 300 }), 200_000).action).not.toBe('abort');
    });
  });

  describe('rule 3: auto-converge throttle (QEMU: 50% threshold, twice, 20 → +10 → 99)', () => {
    it('given a pass dirtying exactly 50% of what it sent, then it is not a hit (QEMU uses >)', () => {
      expect(isNonConvergingPass(history({ sent: 1000, left: 500 })[0]!, 50)).toBe(false);
      expect(isNonConvergingPass(history({ sent: 1000, left: 501 })[0]!, 50)).toBe(true);
    });

    it('given one non-converging pass, when asked, then continue and keep watching', () => {
      const d = decideConvergence(history(calm(), hit()), policyOf(), 2000);
      expect(d).toEqual({ action: 'continue', reason: expect.stringContaining('watching') });
    });

    it('given two non-converging passes in a row, when asked, then throttle at the initial 20%', () => {
      const h = history(calm(), hit(), hit());
      expect(trailingNonConvergingPasses(h, 50)).toBe(2);
      const d = decideConvergence(h, policyOf(), 3000);
      expect(d).toEqual({ action: 'throttle', percent: 20, reason: expect.stringContaining('starting auto-converge at 20%') });
    });

    it('given two hits separated by a calm pass, when asked, then no throttle yet', () => {
      expect(decideConvergence(history(hit(), calm(), hit()), policyOf(), 3000).action).toBe('continue');
    });

    it('given a pass at 20% that is still a hit, when asked, then raise by the increment to 30%', () => {
      const d = decideConvergence(history(hit(), hit(), hit(20)), policyOf(), 3000);
      expect(d).toMatchObject({ action: 'throttle', percent: 30 });
      expect(d.reason).toContain('still not converging at 20%');
    });

    it('given a pass at 95% that is still a hit, when asked, then the throttle stops at the 99% maximum', () => {
      expect(decideConvergence(history(hit(), hit(), hit(95)), policyOf(), 3000)).toMatchObject({ action: 'throttle', percent: 99 });
    });

    it('given a throttled pass that converges, when asked, then continue and keep the throttle', () => {
      expect(decideConvergence(history(hit(), hit(), calm(20)), policyOf(), 3000).action).toBe('continue');
    });

    it('given custom initial, increment and maximum, when throttling, then they are used', () => {
      const p = policyOf({ throttleInitialPct: 30, throttleIncrementPct: 25, maxThrottlePct: 70 });
      expect(decideConvergence(history(hit(), hit()), p, 2000)).toMatchObject({ percent: 30 });
      expect(decideConvergence(history(hit(), hit(), hit(30)), p, 3000)).toMatchObject({ percent: 55 });
      expect(decideConvergence(history(hit(), hit(), hit(55)), p, 3000)).toMatchObject({ percent: 70 });
    });

    it('given a custom trigger threshold of 80%, then a 70% pass is not a hit', () => {
      const h = history({ sent: 1000, left: 700 }, { sent: 700, left: 490 });
      expect(decideConvergence(h, policyOf({ throttleTriggerThresholdPct: 80 }), 2000).action).toBe('continue');
    });

    it('given auto-converge is off, when not converging, then no throttle', () => {
      expect(decideConvergence(history(hit(), hit()), policyOf({ autoConverge: false }), 2000).action).toBe('continue');
    });
  });

  describe('rule 4: downtime steps (Nova live_migration_downtime, _steps, _delay)', () => {
    // 4 GiB × 10 s/GiB = a step every 40 s; 300 → 800 ms in 5 steps of 100 ms
    const stepped = policyOf({ maxDowntimeLimitMs: 800, downtimeSteps: { steps: 5, delayPerGiBSec: 10 }, autoConverge: false });

    it('given steps, then the schedule rises linearly from the initial to the maximum limit', () => {
      expect(downtimeSchedule(stepped)).toEqual([
        { atMs: 0, downtimeLimitMs: 300 },
        { atMs: 40_000, downtimeLimitMs: 400 },
        { atMs: 80_000, downtimeLimitMs: 500 },
        { atMs: 120_000, downtimeLimitMs: 600 },
        { atMs: 160_000, downtimeLimitMs: 700 },
        { atMs: 200_000, downtimeLimitMs: 800 },
      ]);
      expect(scheduledDowntimeLimitMs(stepped, 39_999)).toBe(300);
      expect(scheduledDowntimeLimitMs(stepped, 1e9)).toBe(800);
    });

    it('given no steps, then the schedule is the initial limit only', () => {
      expect(downtimeSchedule(policyOf())).toEqual([{ atMs: 0, downtimeLimitMs: 300 }]);
      expect(downtimeSchedule(policyOf({ maxDowntimeLimitMs: 900 }))).toEqual([{ atMs: 0, downtimeLimitMs: 300 }]);
    });

    it('given 45 s elapsed and the limit still at 300 ms, when asked, then raise it to 400 ms', () => {
      const d = decideConvergence(history(calm(), calm()), stepped, 45_000);
      expect(d).toMatchObject({ action: 'raise-downtime', downtimeLimitMs: 400 });
      expect(d.reason).toContain('from 300 ms to 400 ms');
    });

    it('given 30 s elapsed, when asked, then no step is due yet', () => {
      expect(decideConvergence(history(calm(), calm()), stepped, 30_000).action).toBe('continue');
    });

    it('given the limit already raised to 400 ms, when asked at 45 s, then nothing to raise', () => {
      expect(decideConvergence(history(calm(), calm(0, 400)), stepped, 45_000).action).toBe('continue');
    });

    it('given several steps overdue (130 s), when asked, then jump straight to the scheduled 600 ms', () => {
      expect(decideConvergence(history(calm(), calm()), stepped, 130_000)).toMatchObject({ downtimeLimitMs: 600 });
    });

    it('given a throttle and a step both due, when asked, then the throttle comes first (rule order)', () => {
      const p = policyOf({ maxDowntimeLimitMs: 800, downtimeSteps: { steps: 5, delayPerGiBSec: 10 } });
      expect(decideConvergence(history(hit(), hit()), p, 45_000).action).toBe('throttle');
    });
  });

  describe('rule 5: post-copy', () => {
    it('given auto-converge off and two non-converging passes, when post-copy is allowed, then switch to post-copy', () => {
      const d = decideConvergence(history(hit(), hit()), policyOf({ autoConverge: false, postCopy: true }), 2000);
      expect(d).toMatchObject({ action: 'switch-to-postcopy' });
      expect(d.reason).toContain('auto-converge is off');
    });

    it('given the throttle at its 99% maximum and still a hit, when post-copy is allowed, then switch to post-copy', () => {
      const d = decideConvergence(history(hit(), hit(), hit(99)), policyOf({ postCopy: true }), 3000);
      expect(d).toMatchObject({ action: 'switch-to-postcopy', reason: expect.stringContaining('maximum (99%)') });
    });

    it('given the throttle still below its maximum, when post-copy is allowed, then throttle first', () => {
      expect(decideConvergence(history(hit(), hit(), hit(50)), policyOf({ postCopy: true }), 3000).action).toBe('throttle');
    });

    it('given the throttle maxed but a downtime step still to come, when allowed, then wait for the step', () => {
      const p = policyOf({ postCopy: true, maxDowntimeLimitMs: 800, downtimeSteps: { steps: 5, delayPerGiBSec: 10 } });
      const d = decideConvergence(history(hit(), hit(), hit(99)), p, 3000);
      expect(d).toEqual({ action: 'continue', reason: expect.stringContaining('next downtime step') });
    });

    it('given the throttle maxed and every downtime step taken, when allowed, then switch', () => {
      const p = policyOf({ postCopy: true, progressTimeoutSec: 3600, maxDowntimeLimitMs: 800, downtimeSteps: { steps: 5, delayPerGiBSec: 10 } });
      expect(decideConvergence(history(hit(), hit(), hit(99, 800)), p, 250_000).action).toBe('switch-to-postcopy');
    });

    it('given the completion timeout near (590 s elapsed, last pass 20 s), when allowed, then switch even while converging slowly', () => {
      const h = history({ sent: 4096, left: 2000, ms: 570_000 }, { sent: 2000, left: 900, ms: 20_000 });
      const d = decideConvergence(h, policyOf({ postCopy: true, progressTimeoutSec: 3600 }), 590_000);
      expect(d).toMatchObject({ action: 'switch-to-postcopy', reason: expect.stringContaining('is near') });
    });

    it('given the completion timeout near, when post-copy is not allowed, then continue until it is reached', () => {
      const h = history({ sent: 4096, left: 2000, ms: 570_000 }, { sent: 2000, left: 900, ms: 20_000 });
      expect(decideConvergence(h, policyOf({ progressTimeoutSec: 3600 }), 590_000).action).toBe('continue');
    });

    it('given not converging, throttle maxed and post-copy not allowed, then continue and say it waits for the timeout', () => {
      const d = decideConvergence(history(hit(), hit(), hit(99)), policyOf(), 3000);
      expect(d).toEqual({ action: 'continue', reason: expect.stringContaining('completion timeout at 600 s') });
    });
  });

  describe('any history', () => {
    const pass = fc.record({
      sent: fc.integer({ min: 1, max: 4096 }),
      left: fc.integer({ min: 0, max: 4096 }),
      throttle: fc.constantFrom(0, 20, 30, 50, 90, 99),
      limit: fc.constantFrom(300, 400, 800),
      ms: fc.integer({ min: 1, max: 60_000 }),
    });
    const policyArb = fc.record({
      autoConverge: fc.boolean(),
      postCopy: fc.boolean(),
      steps: fc.boolean(),
    });

    it('when asked, then the decision is well-formed, explained, idempotent and within the policy', () => {
      fc.assert(
        fc.property(fc.array(pass, { maxLength: 12 }), policyArb, fc.integer({ min: 0, max: 900_000 }), (specs, pa, extra) => {
          const p = policyOf({
            autoConverge: pa.autoConverge,
            postCopy: pa.postCopy,
            ...(pa.steps ? { maxDowntimeLimitMs: 800, downtimeSteps: { steps: 5, delayPerGiBSec: 10 } } : {}),
          });
          const h = history(...specs);
          const now = (h.length ? endOf(h) : 0) + extra;
          const d: Decision = decideConvergence(h, p, now);
          expect(d.reason.length).toBeGreaterThan(10);
          expect(decideConvergence(h, p, now)).toEqual(d);
          const last = h[h.length - 1];
          switch (d.action) {
            case 'throttle':
              expect(p.autoConverge).toBe(true);
              expect(d.percent).toBeGreaterThan(last!.throttlePct);
              expect(d.percent).toBeLessThanOrEqual(p.maxThrottlePct);
              break;
            case 'raise-downtime':
              expect(d.downtimeLimitMs).toBeGreaterThan(last!.downtimeLimitMs);
              expect(d.downtimeLimitMs).toBeLessThanOrEqual(800);
              break;
            case 'switch-to-postcopy':
              expect(p.postCopy).toBe(true);
              break;
            case 'abort':
              if (d.code === 'COMPLETION_TIMEOUT') {
                expect(now).toBeGreaterThanOrEqual(600_000);
                expect(p.postCopy).toBe(false);
              } else {
                expect(now - lastProgressMs(h, p.memoryBytes)).toBeGreaterThanOrEqual(150_000);
              }
              break;
            case 'continue':
              break;
          }
        }),
        { numRuns: 500 },
      );
    });
  });
});
