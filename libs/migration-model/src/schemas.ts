import { z } from 'zod';
import {
  DEFAULT_DEVICE_STATE_BYTES,
  DEFAULT_MAX_PASSES,
  DEFAULT_PASS_OVERHEAD_MS,
  DEFAULT_SWITCHOVER_FIXED_MS,
  KUBEVIRT_DEFAULT_COMPLETION_TIMEOUT_PER_GIB_SEC,
  KUBEVIRT_DEFAULT_PROGRESS_TIMEOUT_SEC,
  MAX_DOWNTIME_LIMIT_MS,
  MAX_MAX_PASSES,
  MAX_TIMEOUT_SEC,
  NOVA_DEFAULT_DOWNTIME_DELAY_PER_GIB_SEC,
  NOVA_DEFAULT_DOWNTIME_STEPS,
  QEMU_DEFAULT_DOWNTIME_LIMIT_MS,
  QEMU_DEFAULT_MAX_THROTTLE_PCT,
  QEMU_DEFAULT_THROTTLE_INCREMENT_PCT,
  QEMU_DEFAULT_THROTTLE_INITIAL_PCT,
  QEMU_DEFAULT_THROTTLE_TRIGGER_THRESHOLD_PCT,
} from './constants';

const finiteNonNegative = () => z.number().finite().min(0);
const finitePositive = () => z.number().finite().positive();
/** QEMU accepts 1..99 for the throttle parameters; 0 means "not throttled" for the current value. */
const throttlePct = () => z.number().int().min(1).max(99);

/**
 * The physics of one pre-copy migration (the sim driver's inputs). Absent optional fields take the
 * defaults in constants.ts; `workingSetBytes` defaults to the whole memory and
 * `switchoverBandwidthBytesPerSec` to `bandwidthBytesPerSec`.
 */
export const PrecopyParamsSchema = z
  .object({
    /** Guest RAM; the first pass sends all of it. */
    memoryBytes: finitePositive(),
    /** Rate at which the (unthrottled) guest dirties pages. */
    dirtyRateBytesPerSec: finiteNonNegative(),
    /** The dirtied pages all lie in this set: dirty(t) = min(workingSet, dirtyRate × t). ≤ memoryBytes. */
    workingSetBytes: finiteNonNegative().optional(),
    /** Bandwidth of the pre-copy passes (after any max-bandwidth cap); also what QEMU "measures". */
    bandwidthBytesPerSec: finitePositive(),
    /** Bandwidth of the stop-and-copy. QEMU lifts max-bandwidth for it (§3), so it may exceed the above. */
    switchoverBandwidthBytesPerSec: finitePositive().optional(),
    /** The switchover happens once remaining / bandwidth ≤ this. */
    downtimeLimitMs: finitePositive().max(MAX_DOWNTIME_LIMIT_MS).default(QEMU_DEFAULT_DOWNTIME_LIMIT_MS),
    maxPasses: z.number().int().min(1).max(MAX_MAX_PASSES).default(DEFAULT_MAX_PASSES),
    /** Bitmap sync and bookkeeping per pass; the guest keeps dirtying meanwhile. */
    passOverheadMs: finiteNonNegative().default(DEFAULT_PASS_OVERHEAD_MS),
    /** Non-RAM device state copied during the pause. */
    deviceStateBytes: finiteNonNegative().default(DEFAULT_DEVICE_STATE_BYTES),
    /** Fixed switchover cost besides copying (stop vCPUs, last sync, resume on the target). */
    switchoverFixedMs: finiteNonNegative().default(DEFAULT_SWITCHOVER_FIXED_MS),
    /** Auto-converge throttle in effect: the guest's dirty rate is reduced by this percent. 0 = none. */
    throttlePct: z.number().finite().min(0).max(QEMU_DEFAULT_MAX_THROTTLE_PCT).default(0),
  })
  .superRefine((p, ctx) => {
    if (p.workingSetBytes !== undefined && p.workingSetBytes > p.memoryBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['workingSetBytes'],
        message: `workingSetBytes (${p.workingSetBytes}) cannot exceed memoryBytes (${p.memoryBytes})`,
      });
    }
  })
  .transform((p) => ({
    ...p,
    workingSetBytes: p.workingSetBytes ?? p.memoryBytes,
    switchoverBandwidthBytesPerSec: p.switchoverBandwidthBytesPerSec ?? p.bandwidthBytesPerSec,
  }));
/** What callers pass: optional fields may be left out. */
export type PrecopyParamsInput = z.input<typeof PrecopyParamsSchema>;
/** Resolved parameters: every field present. */
export type PrecopyParams = z.output<typeof PrecopyParamsSchema>;

/** Validates and fills in defaults. Throws a ZodError naming the bad field. */
export function resolvePrecopyParams(input: PrecopyParamsInput): PrecopyParams {
  return PrecopyParamsSchema.parse(input);
}

/**
 * Nova-style downtime steps (`live_migration_downtime`, `_steps`, `_delay`): the downtime limit rises
 * from `downtimeLimitMs` to `maxDowntimeLimitMs` in `steps` equal steps; step i is due once
 * i × delayPerGiBSec × memory GiB seconds have passed.
 */
export const DowntimeStepsSchema = z.object({
  steps: z.number().int().min(1).max(100).default(NOVA_DEFAULT_DOWNTIME_STEPS),
  delayPerGiBSec: z.number().finite().min(0).max(MAX_TIMEOUT_SEC).default(NOVA_DEFAULT_DOWNTIME_DELAY_PER_GIB_SEC),
});
export type DowntimeSteps = z.output<typeof DowntimeStepsSchema>;

/**
 * How a migration may converge, as `decideConvergence` reads it. Defaults: QEMU 7.2 (downtime limit,
 * throttle), KubeVirt (timeouts). A superset of the wire contract's policy in @flexmig/contracts,
 * plus the guest's memory size, which the per-GiB timeouts need.
 */
export const MigrationPolicySchema = z
  .object({
    /** Initial downtime limit (QEMU's downtime-limit). */
    downtimeLimitMs: z.number().int().min(1).max(MAX_DOWNTIME_LIMIT_MS).default(QEMU_DEFAULT_DOWNTIME_LIMIT_MS),
    /** The highest limit the downtime steps may reach; required with `downtimeSteps`. */
    maxDowntimeLimitMs: z.number().int().min(1).max(MAX_DOWNTIME_LIMIT_MS).optional(),
    downtimeSteps: DowntimeStepsSchema.optional(),
    /** MiB/s cap on the pre-copy stream; 0 or absent = uncapped. */
    bandwidthMiBps: z.number().int().min(0).max(100_000).optional(),
    autoConverge: z.boolean().default(true),
    throttleInitialPct: throttlePct().default(QEMU_DEFAULT_THROTTLE_INITIAL_PCT),
    throttleIncrementPct: throttlePct().default(QEMU_DEFAULT_THROTTLE_INCREMENT_PCT),
    maxThrottlePct: throttlePct().default(QEMU_DEFAULT_MAX_THROTTLE_PCT),
    throttleTriggerThresholdPct: z.number().int().min(1).max(100).default(QEMU_DEFAULT_THROTTLE_TRIGGER_THRESHOLD_PCT),
    postCopy: z.boolean().default(false),
    completionTimeoutPerGiBSec: z
      .number()
      .int()
      .min(1)
      .max(MAX_TIMEOUT_SEC)
      .default(KUBEVIRT_DEFAULT_COMPLETION_TIMEOUT_PER_GIB_SEC),
    progressTimeoutSec: z.number().int().min(1).max(MAX_TIMEOUT_SEC).default(KUBEVIRT_DEFAULT_PROGRESS_TIMEOUT_SEC),
    /** Guest RAM; the completion timeout and the downtime-step delays scale with it. */
    memoryBytes: z.number().int().positive(),
  })
  .superRefine((p, ctx) => {
    if (p.maxDowntimeLimitMs !== undefined && p.maxDowntimeLimitMs < p.downtimeLimitMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxDowntimeLimitMs'],
        message: `maxDowntimeLimitMs (${p.maxDowntimeLimitMs}) is below downtimeLimitMs (${p.downtimeLimitMs})`,
      });
    }
    if (p.downtimeSteps !== undefined && p.maxDowntimeLimitMs === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxDowntimeLimitMs'],
        message: 'downtimeSteps needs maxDowntimeLimitMs (the limit the steps rise to)',
      });
    }
    if (p.throttleInitialPct > p.maxThrottlePct) {
      ctx.addIssue({
        code: 'custom',
        path: ['throttleInitialPct'],
        message: `throttleInitialPct (${p.throttleInitialPct}) is above maxThrottlePct (${p.maxThrottlePct})`,
      });
    }
  });
export type MigrationPolicy = z.infer<typeof MigrationPolicySchema>;
export type MigrationPolicyInput = z.input<typeof MigrationPolicySchema>;

/** Validates and fills in defaults. Throws a ZodError naming the bad field. */
export function resolveMigrationPolicy(input: MigrationPolicyInput): MigrationPolicy {
  return MigrationPolicySchema.parse(input);
}
