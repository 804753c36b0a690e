import {
  DEFAULT_SWITCHOVER_TUNING,
  QEMU_MIN_DOWNTIME_LIMIT_MS,
  expectedSwitchoverMs,
  qemuDowntimeLimitMs,
  qemuFigureBound,
  qemuPeakBandwidth,
  qemuSwitchesOverNext,
  realBandwidth,
  streamCapBytesPerSec,
  switchoverFits,
} from './switchover-decision';
import { qemuAgentCopyBudgetMs, qemuAgentStopCopyMs } from '@flexmig/migration-model';

const MiB = 1024 * 1024;
const tuning = { windowMs: 1_000, minWindowMs: 200, reserveMs: 20, bandwidthMargin: 0.8 };

describe('switchover decision', () => {
  describe('realBandwidth', () => {
    it('given samples over more than the window, when measured, then it counts only the last window', () => {
      // 100 MiB/s for 2 s, then 400 MiB/s for the last second
      const samples = [
        { atMs: 0, transferred: 0 },
        { atMs: 1_000, transferred: 100 * MiB },
        { atMs: 2_000, transferred: 200 * MiB },
        { atMs: 2_500, transferred: 400 * MiB },
        { atMs: 3_000, transferred: 600 * MiB },
      ];
      expect(realBandwidth(samples, tuning)).toBeCloseTo(400 * MiB, -3);
    });

    it('given samples spanning less than the shortest window, when measured, then there is no figure yet', () => {
      expect(realBandwidth([{ atMs: 0, transferred: 0 }, { atMs: 150, transferred: 10 * MiB }], tuning)).toBeUndefined();
      expect(realBandwidth([], tuning)).toBeUndefined();
    });

    it('given a stream that did not move, when measured, then there is no figure', () => {
      expect(realBandwidth([{ atMs: 0, transferred: 5 }, { atMs: 900, transferred: 5 }], tuning)).toBeUndefined();
    });
  });

  describe('qemuPeakBandwidth', () => {
    it("given QEMU's window figures jumping, when asked, then it is the highest within the window", () => {
      const samples = [
        { atMs: 0, transferred: 0, qemuBytesPerSec: 900 * MiB },
        { atMs: 3_000, transferred: 1, qemuBytesPerSec: 200 * MiB },
        { atMs: 3_500, transferred: 2, qemuBytesPerSec: 600 * MiB },
        { atMs: 4_000, transferred: 3, qemuBytesPerSec: 150 * MiB },
      ];
      expect(qemuPeakBandwidth(samples, 2_000)).toBe(600 * MiB);
      expect(qemuPeakBandwidth(samples, 5_000)).toBe(900 * MiB);
      expect(qemuPeakBandwidth([], 5_000)).toBe(0);
    });
  });

  describe('switchoverFits', () => {
    it('given what is left at the measured rate within the limit, when asked, then it fits', () => {
      // 20 ms reserve + 64 MiB at 0.8 × 400 MiB/s = 20 + 200 ms
      expect(expectedSwitchoverMs(64 * MiB, 400 * MiB, tuning)).toBeCloseTo(220, 5);
      expect(switchoverFits(64 * MiB, 400 * MiB, 300, tuning)).toBe(true);
    });

    it('given more left than the limit allows, when asked, then it does not fit', () => {
      // 20 + 100 MiB / 320 MiB/s = 332.5 ms > 300 ms
      expect(switchoverFits(100 * MiB, 400 * MiB, 300, tuning)).toBe(false);
    });

    it('given nothing left, when asked, then it fits even without a measurement; with bytes left and no measurement it does not', () => {
      expect(switchoverFits(0, undefined, 300, tuning)).toBe(true);
      expect(switchoverFits(MiB, undefined, 300, tuning)).toBe(false);
    });
  });

  describe('qemuDowntimeLimitMs (what QEMU is told, so that its own test is the agent\'s)', () => {
    it("given QEMU's peak figure 2.5× the agent's, when rescaled, then QEMU's limit shrinks so that even at its peak its threshold is the agent's budget", () => {
      const real = 400 * MiB;
      const qemu = 1000 * MiB;
      const limit = qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: real, qemuPeakBytesPerSec: qemu, dirtyBytesPerSec: 0 }, tuning);
      // QEMU switches when pending < qemu × limit; that must be the bytes the agent expects to fit
      const qemuThreshold = (qemu * limit) / 1000;
      const agentBudget = (real * tuning.bandwidthMargin * (300 - tuning.reserveMs)) / 1000;
      expect(limit).toBe(Math.floor((280 * (400 * 0.8)) / 1000));
      expect(qemuThreshold).toBeLessThanOrEqual(agentBudget);
      expect(qemuThreshold).toBeGreaterThan(agentBudget - qemu / 1000); // within one whole ms of it
      // and what QEMU would then let through fits the policy's limit at the agent's rate, at its peak or below
      expect(switchoverFits(qemuThreshold, real, 300, tuning)).toBe(true);
      expect(switchoverFits((0.5 * qemu * limit) / 1000, real, 300, tuning)).toBe(true);
    });

    it('given a guest that dirties memory, when rescaled, then what it dirties between QEMU\'s decision and its stop is kept out of the budget', () => {
      const real = 200 * MiB;
      const qemu = 600 * MiB;
      const withDirt = (dirty: number) => qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: real, qemuPeakBytesPerSec: qemu, dirtyBytesPerSec: dirty }, { ...tuning, stopMarginMs: 250 });
      expect(withDirt(0)).toBe(qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: real, qemuPeakBytesPerSec: qemu, dirtyBytesPerSec: 0 }, tuning));
      // 40 MiB/s for 250 ms: 10 MiB more at the stop, 62.5 ms of the final copy at 160 MiB/s
      const limit = withDirt(40 * MiB);
      expect(limit).toBe(Math.floor(((280 - 62.5) * (200 * 0.8)) / 600));
      // what QEMU lets through at its peak, plus what the guest dirties until the stop, still fits
      expect(switchoverFits((qemu * limit) / 1000 + 10 * MiB, real, 300, tuning)).toBe(true);
      // a guest that dirties more in 250 ms than the budget holds: nothing but an empty remainder fits
      expect(withDirt(300 * MiB)).toBe(QEMU_MIN_DOWNTIME_LIMIT_MS);
    });

    it("given QEMU's figure at the real rate, then its limit is the copy budget the prediction models (libs/migration-model)", () => {
      // the scheduler predicts a qemu migration on qemuAgentCopyBudgetMs: it must be what the agent hands QEMU
      for (const limitMs of [50, 300, 1_000])
        for (const real of [100 * MiB, 1_000 * MiB])
          for (const dirty of [0, 16 * MiB, 200 * MiB]) {
            // QEMU counts at real × margin, so its figure for the stream is real (the scale is then the margin)
            const agent = qemuDowntimeLimitMs({ limitMs, realBytesPerSec: real, qemuPeakBytesPerSec: real, dirtyBytesPerSec: dirty });
            const modelled = qemuAgentCopyBudgetMs(limitMs, qemuAgentStopCopyMs(dirty, real));
            expect({ limitMs, real, dirty, agent }).toEqual({ limitMs, real, dirty, agent: Math.min(limitMs, Math.max(QEMU_MIN_DOWNTIME_LIMIT_MS, modelled)) });
          }
    });

    it("given QEMU's figure below the agent's, when rescaled, then QEMU's limit never exceeds the policy's", () => {
      expect(qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: 800 * MiB, qemuPeakBytesPerSec: 100 * MiB, dirtyBytesPerSec: 0 }, tuning)).toBe(300);
    });

    it('given no measurement yet, when rescaled, then QEMU gets the smallest limit: only a guest with nothing left switches over', () => {
      expect(qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: undefined, qemuPeakBytesPerSec: 900 * MiB, dirtyBytesPerSec: 0 }, tuning)).toBe(QEMU_MIN_DOWNTIME_LIMIT_MS);
    });

    it("given QEMU has not measured the guest's dirty rate yet, when rescaled, then QEMU gets the smallest limit: what the guest dirties until the stop is unknown", () => {
      // bench/qemu's dirtying guest, first second of its stream: QEMU's dirty-pages-rate is 0 until its second sync
      expect(qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: 320 * MiB, qemuPeakBytesPerSec: 640 * MiB, dirtyBytesPerSec: undefined }, tuning)).toBe(QEMU_MIN_DOWNTIME_LIMIT_MS);
    });

    it('given a limit no larger than the reserve, when rescaled, then nothing but an empty remainder fits', () => {
      expect(qemuDowntimeLimitMs({ limitMs: 20, realBytesPerSec: 400 * MiB, qemuPeakBytesPerSec: 400 * MiB, dirtyBytesPerSec: 0 }, tuning)).toBe(QEMU_MIN_DOWNTIME_LIMIT_MS);
    });

    it('given a policy downtime step raising the limit, when rescaled, then QEMU\'s limit grows with it', () => {
      const at = (limitMs: number) => qemuDowntimeLimitMs({ limitMs, realBytesPerSec: 300 * MiB, qemuPeakBytesPerSec: 600 * MiB, dirtyBytesPerSec: 0 }, tuning);
      expect(at(400)).toBeGreaterThan(at(300));
    });

    it('uses the documented defaults when no tuning is given', () => {
      expect(qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: 100 * MiB, qemuPeakBytesPerSec: 100 * MiB, dirtyBytesPerSec: 0 })).toBe(
        Math.floor((300 - DEFAULT_SWITCHOVER_TUNING.reserveMs) * DEFAULT_SWITCHOVER_TUNING.bandwidthMargin),
      );
    });
  });

  describe('streamCapBytesPerSec (the max-bandwidth that bounds QEMU\'s window figure)', () => {
    const cap = (i: Partial<Parameters<typeof streamCapBytesPerSec>[0]>) =>
      streamCapBytesPerSec({ currentBytesPerSec: undefined, policyBytesPerSec: undefined, fullWindowBytesPerSec: undefined, ...i }, { capHeadroom: 2 });

    it('given a stream that has not run a full window, when asked, then there is no cap yet (the policy\'s, if any, holds)', () => {
      expect(cap({})).toBeUndefined();
      expect(cap({ policyBytesPerSec: 64 * MiB })).toBeUndefined();
    });

    it('given a full window measured, when asked, then the cap is the headroom above it, whole bytes', () => {
      expect(cap({ fullWindowBytesPerSec: 300 * MiB + 0.25 })).toBe(Math.ceil(2 * (300 * MiB + 0.25)));
    });

    it('given a stream that slowed down, when asked, then the cap stays where it was (a window under way may already be above a lower one)', () => {
      expect(cap({ currentBytesPerSec: 800 * MiB, fullWindowBytesPerSec: 100 * MiB })).toBe(800 * MiB);
      expect(cap({ currentBytesPerSec: 800 * MiB })).toBe(800 * MiB);
    });

    it('given a stream pressing against its cap, when asked, then the cap doubles: the stream is never held at an early figure', () => {
      let c = cap({ fullWindowBytesPerSec: 10 * MiB })!;
      for (let i = 0; i < 6; i++) c = cap({ currentBytesPerSec: c, fullWindowBytesPerSec: c })!;
      expect(c).toBe(20 * MiB * 2 ** 6);
    });

    it("given the policy's own cap, when asked, then the agent's cap never exceeds it", () => {
      expect(cap({ policyBytesPerSec: 64 * MiB, fullWindowBytesPerSec: 60 * MiB })).toBe(64 * MiB);
      expect(cap({ policyBytesPerSec: 64 * MiB, fullWindowBytesPerSec: 20 * MiB })).toBe(40 * MiB);
    });
  });

  describe('qemuFigureBound', () => {
    it('given no cap, when asked, then it is the highest figure QEMU showed', () => {
      expect(qemuFigureBound(900 * MiB, undefined)).toBe(900 * MiB);
    });

    it('given a cap, when asked, then it is at least the cap (every later window keeps to it), and the peak of windows before it while they are recent', () => {
      expect(qemuFigureBound(300 * MiB, 1140 * MiB)).toBe(1140 * MiB);
      expect(qemuFigureBound(1202 * MiB, 1140 * MiB)).toBe(1202 * MiB);
    });

    it("given the bound, when QEMU is told its limit, then what it lets through at any window figure up to the cap fits the agent's budget", () => {
      // the stream of the known gap (docs/switchover.md): 570 MiB/s, QEMU figures up to 1,074 seen, then 1,202
      const real = 570 * MiB;
      const streamCap = streamCapBytesPerSec({ currentBytesPerSec: undefined, policyBytesPerSec: undefined, fullWindowBytesPerSec: real }, { capHeadroom: 2 })!;
      const limit = qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: real, qemuPeakBytesPerSec: qemuFigureBound(1074 * MiB, streamCap), dirtyBytesPerSec: 0 }, tuning);
      for (const figure of [300 * MiB, 1074 * MiB, 1140 * MiB]) expect(switchoverFits((figure * limit) / 1000, real, 300, tuning)).toBe(true);
      // without the cap, the 1,202 MiB/s window let through more than fits
      const uncapped = qemuDowntimeLimitMs({ limitMs: 300, realBytesPerSec: real, qemuPeakBytesPerSec: 1074 * MiB, dirtyBytesPerSec: 0 }, tuning);
      expect(switchoverFits((1202 * MiB * uncapped) / 1000, real, 300, tuning)).toBe(false);
    });
  });
});

describe('qemuSwitchesOverNext (QEMU\'s own test at its next iteration)', () => {
  it('given nothing pending, then yes, whatever its figures (an idle guest: QEMU shows 0 MB/s for zero pages)', () => {
    expect(qemuSwitchesOverNext(0, 0, QEMU_MIN_DOWNTIME_LIMIT_MS)).toBe(true);
  });
  it('given less pending than its bandwidth × its limit, then yes; at or above it, no', () => {
    // 1 GB/s × 1 ms = 1 MB
    expect(qemuSwitchesOverNext(999_999, 1e9, 1)).toBe(true);
    expect(qemuSwitchesOverNext(1_000_000, 1e9, 1)).toBe(false);
    expect(qemuSwitchesOverNext(32 * 1024 * 1024, 1e9, 1)).toBe(false);
    expect(qemuSwitchesOverNext(32 * 1024 * 1024, 1e9, 300)).toBe(true);
  });
  it('given pages pending and no figure yet, then no', () => {
    expect(qemuSwitchesOverNext(4096, 0, 300)).toBe(false);
  });
});
