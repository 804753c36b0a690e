import { BYTES_PER_GIB, BYTES_PER_MIB } from './constants';
import { analyticPrecopy } from './precopy-model';
import { PrecopySimulation } from './precopy-simulation';
import { type MigrationPolicyInput, type PrecopyParamsInput, resolveMigrationPolicy } from './schemas';
import { applyDecision, simulateWithPolicy } from './simulate-with-policy';

const MiB = BYTES_PER_MIB;
const GiB = BYTES_PER_GIB;

/**
 * Shaped after qemu-migration.md §9: a guest re-dirtying a 99 MiB working set far faster than the
 * default 128 MiB/s cap can send it (1 GiB/s: r = 8). Without help it never converges.
 */
const hotGuest = (memoryBytes = GiB): PrecopyParamsInput => ({
  memoryBytes,
  workingSetBytes: 99 * MiB,
  dirtyRateBytesPerSec: GiB,
  bandwidthBytesPerSec: 128 * MiB,
});
const policy = (over: Partial<MigrationPolicyInput> = {}, memoryBytes = GiB) => resolveMigrationPolicy({ memoryBytes, ...over });
const actions = (run: ReturnType<typeof simulateWithPolicy>) => run.decisions.map((d) => d.decision.action);

describe('simulateWithPolicy (the closed loop the sim driver runs)', () => {
  it('given an idle guest, when migrated under the default policy, then it converges in one pass with no decision', () => {
    const run = simulateWithPolicy({ memoryBytes: GiB, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 128 * MiB }, policy());
    expect(run.result).toMatchObject({ outcome: 'converged', passes: 1 });
    expect(run.decisions).toEqual([]);
    expect(run.result.totalTimeMs).toBeCloseTo(analyticPrecopy({ memoryBytes: GiB, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 128 * MiB }).totalTimeMs, 6);
  });

  it('given the hot guest, when no policy acts, then the model predicts it cannot converge', () => {
    expect(analyticPrecopy(hotGuest()).outcome).toBe('not-converging');
  });

  it('given the hot guest and auto-converge (QEMU defaults), when migrated, then the throttle climbs 20, 30, … and it converges', () => {
    const run = simulateWithPolicy(hotGuest(), policy());
    expect(run.result).toMatchObject({ outcome: 'converged', completed: true });
    const percents = run.decisions.map((d) => (d.decision.action === 'throttle' ? d.decision.percent : NaN));
    expect(percents.slice(0, 3)).toEqual([20, 30, 40]);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(run.result.throttlePct).toBe(percents.at(-1));
    expect(run.result.downtimeMs).toBeLessThanOrEqual(300 + 5);
    // the first throttle comes after two non-converging passes (pass 1 sends fresh memory: not a hit)
    expect(run.decisions[0]).toMatchObject({ afterPass: 3 });
  });

  it('given the hot guest, auto-converge off and post-copy allowed, when migrated, then it switches to post-copy with a tiny pause', () => {
    const run = simulateWithPolicy(hotGuest(), policy({ autoConverge: false, postCopy: true }));
    expect(actions(run)).toEqual(['switch-to-postcopy']);
    expect(run.result).toMatchObject({ outcome: 'postcopy', completed: true, passes: 3, postcopyBytes: 99 * MiB });
    expect(run.result.downtimeMs).toBeLessThan(5); // 256 KiB device state + 2 ms (QEMU measured 2 ms)
  });

  it('given the hot guest, no lever and 1 GiB, when migrated, then it aborts at the 150 s completion timeout', () => {
    const run = simulateWithPolicy(hotGuest(), policy({ autoConverge: false }));
    expect(run.result).toMatchObject({ outcome: 'aborted', completed: false, downtimeMs: 0, totalTimeMs: 150_000 });
    expect(run.result.abortReason).toMatch(/^COMPLETION_TIMEOUT: /);
    expect(run.decisions.at(-1)!.decision).toMatchObject({ action: 'abort', code: 'COMPLETION_TIMEOUT' });
  });

  it('given the hot guest, no lever and 2 GiB (300 s budget), when migrated, then the progress timeout (150 s after the last decrease) aborts first', () => {
    const run = simulateWithPolicy(hotGuest(2 * GiB), policy({ autoConverge: false }, 2 * GiB));
    expect(run.decisions.at(-1)!.decision).toMatchObject({ action: 'abort', code: 'PROGRESS_TIMEOUT' });
    const pass1End = run.result.passResults[0]!.endMs; // 2 GiB at 128 MiB/s + 1 ms overhead
    expect(pass1End).toBeCloseTo(16_001, 6);
    expect(run.result.totalTimeMs).toBeCloseTo(pass1End + 150_000, 6);
  });

  it('given the hot guest and Nova-style downtime steps to 1000 ms, when migrated without throttle, then a raised limit lets it converge', () => {
    const run = simulateWithPolicy(
      hotGuest(),
      policy({ autoConverge: false, maxDowntimeLimitMs: 1000, downtimeSteps: { steps: 2, delayPerGiBSec: 5 } }),
    );
    expect(actions(run)).toEqual(['raise-downtime', 'raise-downtime']);
    expect(run.decisions.map((d) => (d.decision.action === 'raise-downtime' ? d.decision.downtimeLimitMs : 0))).toEqual([650, 1000]);
    expect(run.result).toMatchObject({ outcome: 'converged', downtimeLimitMs: 1000 });
    // 99 MiB at 128 MiB/s = 773 ms, plus 256 KiB device state and 2 ms
    expect(run.result.downtimeMs).toBeCloseTo(773.4375 + 1.953125 + 2, 6);
  });

  it('given a first pass longer than the completion timeout, when migrated, then it is cut at the timeout, mid-pass', () => {
    const run = simulateWithPolicy({ memoryBytes: GiB, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 1 * MiB }, policy());
    expect(run.result).toMatchObject({ outcome: 'aborted', passes: 0, totalTimeMs: 150_000 });
    expect(run.result.bytesTransferred).toBeCloseTo(((150_000 - 1) / 1000) * MiB, 3);
  });

  it('given a decision, when applied by hand between passes, then the simulation carries it out', () => {
    const sim = new PrecopySimulation(hotGuest());
    sim.step();
    applyDecision(sim, { action: 'throttle', percent: 50, reason: 'test' });
    expect(sim.throttlePct).toBe(50);
    applyDecision(sim, { action: 'continue', reason: 'test' });
    expect(applyDecision(sim, { action: 'switch-to-postcopy', reason: 'test' })).toEqual([
      expect.objectContaining({ type: 'switchover-started', mode: 'postcopy' }),
    ]);
    expect(applyDecision(sim, { action: 'abort', code: 'PROGRESS_TIMEOUT', reason: 'too late' })).toEqual([]);
  });
});
