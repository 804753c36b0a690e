import { ErrorCode, FlexmigError, MigrationPolicySchema, type MigrationPolicyInput } from '@flexmig/contracts';
import { type PassSample, resolveMigrationPolicy, resolvePrecopyParams } from '@flexmig/migration-model';
import { ConvergenceFailureCode, type ConvergenceFailureFacts, convergenceFailure, leverLeft, modelPolicyFor, noLeverReason, passesNotConverging } from './precopy-policy';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const policy = (wire: MigrationPolicyInput = {}) => modelPolicyFor(MigrationPolicySchema.parse(wire), GiB);

/** A pass that sent `sentMiB` and left `remainingMiB` dirty, at a throttle. */
function pass(n: number, sentMiB: number, remainingMiB: number, throttlePct = 0): PassSample {
  return {
    pass: n,
    startMs: (n - 1) * 1000,
    endMs: n * 1000,
    bytesSent: sentMiB * MiB,
    remainingBytes: remainingMiB * MiB,
    dirtyRateBytesPerSec: 100 * MiB,
    bandwidthBytesPerSec: 64 * MiB,
    expectedDowntimeMs: (remainingMiB / 64) * 1000,
    throttlePct,
    downtimeLimitMs: 300,
  };
}

describe('leverLeft: may the policy still make the guest converge?', () => {
  it('given post-copy allowed, then yes, whatever the throttle', () => {
    expect(leverLeft(policy({ postCopy: true, autoConverge: false }), 0, 300)).toBe(true);
    expect(leverLeft(policy({ postCopy: true, autoConverge: true }), 99, 300)).toBe(true);
  });

  it('given auto-converge below its maximum throttle, then yes; at the maximum, no', () => {
    const p = policy({ autoConverge: true });
    expect(leverLeft(p, p.maxThrottlePct - 1, 300)).toBe(true);
    expect(leverLeft(p, p.maxThrottlePct, 300)).toBe(false);
  });

  it('given neither auto-converge nor post-copy, then no', () => {
    expect(leverLeft(policy({ autoConverge: false, postCopy: false }), 0, 300)).toBe(false);
  });

  it('given a downtime step still to come, then yes until the last limit is in effect', () => {
    const p = resolveMigrationPolicy({ autoConverge: false, downtimeLimitMs: 300, maxDowntimeLimitMs: 900, downtimeSteps: { steps: 3, delayPerGiBSec: 10 }, memoryBytes: GiB });
    expect(leverLeft(p, 0, 300)).toBe(true);
    expect(leverLeft(p, 0, 900)).toBe(false);
  });
});

describe('noLeverReason: the words of a NOT_CONVERGING failure', () => {
  it('given auto-converge not allowed, then the symptom and that auto-converge is not allowed', () => {
    expect(noLeverReason('3 passes in a row re-dirtied more than 50% of what they sent', policy({ autoConverge: false }), 0)).toBe(
      '3 passes in a row re-dirtied more than 50% of what they sent and auto-converge is not allowed by the policy',
    );
  });

  it('given auto-converge at its maximum, then the symptom and the throttle it reached', () => {
    expect(noLeverReason('the remaining cannot shrink below the downtime budget', policy({ autoConverge: true }), 99)).toBe(
      'the remaining cannot shrink below the downtime budget even at the maximum throttle of 99%',
    );
  });
});

describe('passesNotConverging: the verdict from measured passes (QEMU)', () => {
  it('given no auto-converge, then the trailing passes that re-dirtied more than the threshold', () => {
    const history = [pass(1, 1024, 10), pass(2, 10, 40), pass(3, 40, 40), pass(4, 40, 40)];
    expect(passesNotConverging(history, policy({ autoConverge: false }))).toBe(3);
  });

  it('given a pass that converged last, then none count', () => {
    expect(passesNotConverging([pass(1, 1024, 40), pass(2, 40, 40), pass(3, 40, 5)], policy({ autoConverge: false }))).toBe(0);
  });

  it('given auto-converge, then only the passes at the maximum throttle count (a rising throttle is a lever at work)', () => {
    const p = policy({ autoConverge: true });
    const max = p.maxThrottlePct;
    const history = [pass(1, 1024, 40), pass(2, 40, 40, 20), pass(3, 40, 40, 60), pass(4, 40, 40, max), pass(5, 40, 40, max)];
    expect(passesNotConverging(history, p)).toBe(2);
  });
});

describe('convergenceFailure: what failed, why, with the figures, and what to do', () => {
  const base = (over: Partial<ConvergenceFailureFacts> = {}): ConvergenceFailureFacts => ({
    vmId: 'vm-1',
    migrationId: 'mig-1',
    code: ConvergenceFailureCode.NotConverging,
    reason: 'it keeps re-dirtying',
    figures: { kind: 'measured', dirtyRateBytesPerSec: 48 * MiB, bandwidthBytesPerSec: 16 * MiB, expectedDowntimeMs: 1500 },
    policy: policy({ autoConverge: false, bandwidthMiBps: 16, downtimeLimitMs: 300 }),
    passes: 5,
    elapsedMs: 12_345.6,
    remainingBytes: 24 * MiB,
    throttlePct: 0,
    downtimeLimitMs: 300,
    ...over,
  });

  it('given QEMU’s measurements and no lever, then a Conflict that is not retryable, with the figures and every missing lever', () => {
    const e = convergenceFailure(base());
    expect(e).toBeInstanceOf(FlexmigError);
    expect(e.code).toBe(ErrorCode.Conflict);
    expect(e.retryable).toBe(false);
    expect(e.message).toBe(
      'the memory transfer of VM vm-1 (migration mig-1) cannot converge after 5 pass(es) and 12.3 s: it keeps re-dirtying. ' +
        'The guest dirties 48 MiB/s against 16 MiB/s of migration bandwidth, and 24 MiB were still dirty. ' +
        'The stream was cancelled and the VM keeps running on the source. To migrate it: allow auto-converge, allow post-copy, ' +
        'raise or lift the bandwidth cap (16 MiB/s), raise the downtime limit (the guest needs about 1500 ms, the limit is 300 ms), ' +
        'or migrate when the guest writes less memory.',
    );
    expect(e.details).toEqual({
      code: 'NOT_CONVERGING',
      passes: 5,
      elapsedMs: 12_346,
      remainingBytes: 24 * MiB,
      throttlePct: 0,
      downtimeLimitMs: 300,
      dirtyRateBytesPerSec: 48 * MiB,
      bandwidthBytesPerSec: 16 * MiB,
    });
  });

  it('given a policy timeout, then a Timeout naming which one, and auto-converge below its maximum is told to take more time', () => {
    const completion = convergenceFailure(base({ code: ConvergenceFailureCode.CompletionTimeout, policy: policy({ autoConverge: true, postCopy: false }), throttlePct: 40 }));
    expect(completion.code).toBe(ErrorCode.Timeout);
    expect(completion.message).toContain('did not complete within its completion timeout');
    expect(completion.message).toContain('(throttled 40%)');
    expect(completion.message).toContain('give auto-converge more time (raise completionTimeoutPerGiBSec)');
    expect(completion.message).not.toContain('allow auto-converge');
    expect(completion.message).not.toContain('bandwidth cap');
    const progress = convergenceFailure(base({ code: ConvergenceFailureCode.ProgressTimeout }));
    expect(progress.code).toBe(ErrorCode.Timeout);
    expect(progress.message).toContain('made no progress within its progress timeout');
  });

  it('given the model’s figures (sim), then where the remaining settles, the working set, and the cap against the link', () => {
    const params = resolvePrecopyParams({ memoryBytes: GiB, dirtyRateBytesPerSec: 200 * MiB, workingSetBytes: 256 * MiB, bandwidthBytesPerSec: 100 * MiB });
    const e = convergenceFailure(base({ figures: { kind: 'model', params, linkBytesPerSec: 1024 * MiB }, policy: policy({ autoConverge: false, bandwidthMiBps: 100 }) }));
    expect(e.message).toContain('The guest dirties 200 MiB/s (working set 256 MiB) against 100 MiB/s of migration bandwidth, so about 256 MiB stay dirty.');
    expect(e.message).toContain('raise or lift the bandwidth cap (100 MiB/s on a 1024 MiB/s link)');
    expect(e.message).toContain('the guest needs about 2560 ms');
  });

  it('given a cap at the link speed (sim), then no advice about the cap: lifting it would not help', () => {
    const params = resolvePrecopyParams({ memoryBytes: GiB, dirtyRateBytesPerSec: 200 * MiB, bandwidthBytesPerSec: 100 * MiB });
    const e = convergenceFailure(base({ figures: { kind: 'model', params, linkBytesPerSec: 100 * MiB }, policy: policy({ bandwidthMiBps: 100 }) }));
    expect(e.message).not.toContain('bandwidth cap');
  });
});
