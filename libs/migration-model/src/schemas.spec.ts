import { BYTES_PER_GIB, BYTES_PER_MIB } from './constants';
import { MigrationPolicySchema, PrecopyParamsSchema, resolveMigrationPolicy, resolvePrecopyParams } from './schemas';

describe('MigrationPolicySchema', () => {
  it('given only the memory size, when parsed, then the QEMU 7.2 and KubeVirt defaults are filled in', () => {
    expect(resolveMigrationPolicy({ memoryBytes: BYTES_PER_GIB })).toEqual({
      memoryBytes: BYTES_PER_GIB,
      downtimeLimitMs: 300,
      autoConverge: true,
      throttleInitialPct: 20,
      throttleIncrementPct: 10,
      maxThrottlePct: 99,
      throttleTriggerThresholdPct: 50,
      postCopy: false,
      completionTimeoutPerGiBSec: 150,
      progressTimeoutSec: 150,
    });
  });

  it('given downtime steps with only their maximum set, when parsed, then Nova defaults (10 steps, 75 s/GiB) apply', () => {
    const p = resolveMigrationPolicy({ memoryBytes: BYTES_PER_GIB, maxDowntimeLimitMs: 500, downtimeSteps: {} });
    expect(p.downtimeSteps).toEqual({ steps: 10, delayPerGiBSec: 75 });
  });

  it.each([
    ['downtimeLimitMs 1', { downtimeLimitMs: 1 }],
    ['downtimeLimitMs 60000', { downtimeLimitMs: 60_000 }],
    ['bandwidthMiBps 0 (uncapped)', { bandwidthMiBps: 0 }],
    ['bandwidthMiBps 100000', { bandwidthMiBps: 100_000 }],
    ['completionTimeoutPerGiBSec 1', { completionTimeoutPerGiBSec: 1 }],
    ['completionTimeoutPerGiBSec 3600', { completionTimeoutPerGiBSec: 3600 }],
    ['maxDowntimeLimitMs equal to the limit', { downtimeLimitMs: 500, maxDowntimeLimitMs: 500 }],
  ])('given %s, when parsed, then it is accepted', (_, over) => {
    expect(MigrationPolicySchema.safeParse({ memoryBytes: BYTES_PER_GIB, ...over }).success).toBe(true);
  });

  it.each([
    ['no memory size', {}, 'memoryBytes'],
    ['downtimeLimitMs 0', { memoryBytes: 1, downtimeLimitMs: 0 }, 'downtimeLimitMs'],
    ['downtimeLimitMs 60001', { memoryBytes: 1, downtimeLimitMs: 60_001 }, 'downtimeLimitMs'],
    ['a fractional downtimeLimitMs', { memoryBytes: 1, downtimeLimitMs: 1.5 }, 'downtimeLimitMs'],
    ['bandwidthMiBps 100001', { memoryBytes: 1, bandwidthMiBps: 100_001 }, 'bandwidthMiBps'],
    ['bandwidthMiBps -1', { memoryBytes: 1, bandwidthMiBps: -1 }, 'bandwidthMiBps'],
    ['completionTimeoutPerGiBSec 0', { memoryBytes: 1, completionTimeoutPerGiBSec: 0 }, 'completionTimeoutPerGiBSec'],
    ['completionTimeoutPerGiBSec 3601', { memoryBytes: 1, completionTimeoutPerGiBSec: 3601 }, 'completionTimeoutPerGiBSec'],
    ['progressTimeoutSec 0', { memoryBytes: 1, progressTimeoutSec: 0 }, 'progressTimeoutSec'],
    ['a throttle of 100%', { memoryBytes: 1, maxThrottlePct: 100 }, 'maxThrottlePct'],
    ['an initial throttle above the maximum', { memoryBytes: 1, throttleInitialPct: 60, maxThrottlePct: 50 }, 'throttleInitialPct'],
    ['a maximum downtime below the initial one', { memoryBytes: 1, downtimeLimitMs: 500, maxDowntimeLimitMs: 400 }, 'maxDowntimeLimitMs'],
    ['downtime steps without a maximum', { memoryBytes: 1, downtimeSteps: { steps: 3 } }, 'maxDowntimeLimitMs'],
    ['zero downtime steps', { memoryBytes: 1, maxDowntimeLimitMs: 900, downtimeSteps: { steps: 0 } }, 'downtimeSteps'],
    ['autoConverge as a string', { memoryBytes: 1, autoConverge: 'yes' }, 'autoConverge'],
  ])('given %s, when parsed, then it is refused naming the field', (_, input, field) => {
    const r = MigrationPolicySchema.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path[0])).toContain(field);
  });
});

describe('PrecopyParamsSchema', () => {
  it('given the required physics only, when parsed, then the working set is the memory and the defaults are filled in', () => {
    expect(
      resolvePrecopyParams({ memoryBytes: BYTES_PER_GIB, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 128 * BYTES_PER_MIB }),
    ).toEqual({
      memoryBytes: BYTES_PER_GIB,
      dirtyRateBytesPerSec: 0,
      workingSetBytes: BYTES_PER_GIB,
      bandwidthBytesPerSec: 128 * BYTES_PER_MIB,
      switchoverBandwidthBytesPerSec: 128 * BYTES_PER_MIB,
      downtimeLimitMs: 300,
      maxPasses: 1000,
      passOverheadMs: 1,
      deviceStateBytes: 256 * 1024,
      switchoverFixedMs: 2,
      throttlePct: 0,
    });
  });

  it.each([
    ['memory 0', { memoryBytes: 0 }, 'memoryBytes'],
    ['an infinite dirty rate', { dirtyRateBytesPerSec: Infinity }, 'dirtyRateBytesPerSec'],
    ['a working set above memory', { workingSetBytes: 2 * BYTES_PER_GIB }, 'workingSetBytes'],
    ['a negative pass overhead', { passOverheadMs: -1 }, 'passOverheadMs'],
    ['a fractional maxPasses', { maxPasses: 2.5 }, 'maxPasses'],
    ['a NaN bandwidth', { bandwidthBytesPerSec: NaN }, 'bandwidthBytesPerSec'],
  ])('given %s, when parsed, then it is refused naming the field', (_, over, field) => {
    const r = PrecopyParamsSchema.safeParse({ memoryBytes: BYTES_PER_GIB, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 1, ...over });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path[0])).toContain(field);
  });
});
