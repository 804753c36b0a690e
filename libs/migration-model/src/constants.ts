/**
 * Defaults and limits of the migration model. Each constant carries its unit in its name and its
 * source in its comment, so that a reader can check it against QEMU, KubeVirt or Nova
 * (reference/qemu-migration.md §2, §3, §9).
 */

export const BYTES_PER_MIB = 1024 * 1024;
export const BYTES_PER_GIB = 1024 * BYTES_PER_MIB;
export const MS_PER_SEC = 1000;

// ---- QEMU 7.2 migration parameters (qemu-migration.md §3, read from the binary) -------------------
/** QEMU's `downtime-limit` default: the pause the switchover aims for (a target, not a guarantee). */
export const QEMU_DEFAULT_DOWNTIME_LIMIT_MS = 300;
/** Upper bound we accept for a downtime limit: a minute of pause is already an outage, not a migration. */
export const MAX_DOWNTIME_LIMIT_MS = 60_000;
/** QEMU's `max-bandwidth` default (128 MiB/s, `MAX_THROTTLE`); flexmig lifts it unless a cap is set. */
export const QEMU_DEFAULT_MAX_BANDWIDTH_BYTES_PER_SEC = 128 * BYTES_PER_MIB;
// ---- flexmig's qemu agent: when it lets QEMU switch over (apps/agent/src/drivers/qemu/switchover-decision.ts)
/** The part of the pause that does not depend on the dirty bytes (device state, the target's load and start). */
export const QEMU_AGENT_SWITCHOVER_RESERVE_MS = 25;
/**
 * The part of a sim migration's downtime the sim driver's model does not hold: the saga's own path between
 * the pause and the resume (step 5's answer, step 6's command and answer, step 7's command), about 11 ms in
 * `npm run demo` on a 2-core machine. The sim driver switches over on the limit less this (at least 1 ms), as
 * the qemu agent keeps QEMU_AGENT_SWITCHOVER_RESERVE_MS, and by the same amount, so that the downtime the
 * guest sees stays within the policy's limit with either driver.
 */
export const SIM_SWITCHOVER_RESERVE_MS = QEMU_AGENT_SWITCHOVER_RESERVE_MS;
/** The downtime limit the sim driver's model switches over on, for a policy's limit: {@link SIM_SWITCHOVER_RESERVE_MS} less. */
export function simModelDowntimeLimitMs(downtimeLimitMs: number): number {
  return Math.max(1, downtimeLimitMs - SIM_SWITCHOVER_RESERVE_MS);
}
/** The policy's downtime limit under which the sim driver's model switches over on `modelLimitMs` (the inverse of {@link simModelDowntimeLimitMs}). */
export function simPolicyDowntimeLimitMs(modelLimitMs: number): number {
  return modelLimitMs + SIM_SWITCHOVER_RESERVE_MS;
}
/** The share of the measured bandwidth the agent counts the final copy on. */
export const QEMU_AGENT_SWITCHOVER_BANDWIDTH_MARGIN = 0.8;

/**
 * How long the guest runs on, dirtying memory, after QEMU decided to switch over (it decides at its
 * dirty-bitmap sync, then stops the vCPUs): the agent keeps the time to copy what the guest dirties in it
 * out of its budget (`stopMarginMs`, apps/agent/src/drivers/qemu/switchover-decision.ts).
 */
export const QEMU_AGENT_SWITCHOVER_STOP_MARGIN_MS = 250;

/**
 * The time to copy, at `bandwidthBytesPerSec`, what a guest dirtying `dirtyBytesPerSec` writes during the
 * stop margin: what the agent takes off its copy budget for that guest (0 without a bandwidth).
 */
export function qemuAgentStopCopyMs(dirtyBytesPerSec: number, bandwidthBytesPerSec: number, stopMarginMs = QEMU_AGENT_SWITCHOVER_STOP_MARGIN_MS): number {
  return bandwidthBytesPerSec > 0 ? (dirtyBytesPerSec * stopMarginMs) / bandwidthBytesPerSec : 0;
}

/**
 * The copy-time budget the qemu agent switches over within, for a policy's downtime limit: what is left must
 * copy, at the margin's share of the bandwidth, within the limit less the reserve, less the time to copy
 * what the guest dirties during the stop margin (`stopCopyMs`, {@link qemuAgentStopCopyMs}). A model that
 * predicts a qemu migration switches over on this budget, not on the limit itself (at least 1 ms).
 */
export function qemuAgentCopyBudgetMs(downtimeLimitMs: number, stopCopyMs = 0): number {
  return Math.max(1, Math.floor((downtimeLimitMs - QEMU_AGENT_SWITCHOVER_RESERVE_MS) * QEMU_AGENT_SWITCHOVER_BANDWIDTH_MARGIN - stopCopyMs));
}

/** The least downtime limit whose copy budget is at least `budgetMs` (the inverse of {@link qemuAgentCopyBudgetMs}). */
export function qemuAgentLimitForBudgetMs(budgetMs: number, stopCopyMs = 0): number {
  return Math.ceil((budgetMs + stopCopyMs) / QEMU_AGENT_SWITCHOVER_BANDWIDTH_MARGIN + QEMU_AGENT_SWITCHOVER_RESERVE_MS);
}

/** QEMU's `cpu-throttle-initial`: the first auto-converge throttle, percent of vCPU time taken away. */
export const QEMU_DEFAULT_THROTTLE_INITIAL_PCT = 20;
/** QEMU's `cpu-throttle-increment`: added at each further non-converging sync. */
export const QEMU_DEFAULT_THROTTLE_INCREMENT_PCT = 10;
/** QEMU's `max-cpu-throttle`: the guest keeps at least 1% of its CPU time. */
export const QEMU_DEFAULT_MAX_THROTTLE_PCT = 99;
/**
 * QEMU's `throttle-trigger-threshold`: a sync is "not converging" when the bytes dirtied in the period
 * exceed this percent of the bytes sent in it (`migration_trigger_throttle` in ram.c).
 */
export const QEMU_DEFAULT_THROTTLE_TRIGGER_THRESHOLD_PCT = 50;
/** QEMU starts throttling after this many consecutive over-threshold syncs ("If that happens twice"). */
export const QEMU_THROTTLE_TRIGGER_COUNT = 2;

// ---- KubeVirt MigrationConfiguration defaults ---------------------------------------------------------
/** KubeVirt's `completionTimeoutPerGiB`: a migration of an N GiB guest may take N × 150 s in all. */
export const KUBEVIRT_DEFAULT_COMPLETION_TIMEOUT_PER_GIB_SEC = 150;
/** KubeVirt's `progressTimeout`: the remaining data has not decreased for this long → abort. */
export const KUBEVIRT_DEFAULT_PROGRESS_TIMEOUT_SEC = 150;
/** Upper bound for both timeouts: an hour per GiB / an hour without progress is already a hang. */
export const MAX_TIMEOUT_SEC = 3600;

// ---- OpenStack Nova live_migration_downtime* ------------------------------------------------------------
/** Nova's `live_migration_downtime_steps` default: the limit reaches its maximum in 10 steps. */
export const NOVA_DEFAULT_DOWNTIME_STEPS = 10;
/** Nova's `live_migration_downtime_delay` default: seconds per GiB of memory between two steps. */
export const NOVA_DEFAULT_DOWNTIME_DELAY_PER_GIB_SEC = 75;

// ---- Model defaults (the sim driver's physics) -------------------------------------------------------
/**
 * Per-pass overhead: the dirty-bitmap sync (`migration_bitmap_sync`) and the iteration bookkeeping.
 * Around a millisecond for a few-GiB guest; guests dirty pages during it too.
 */
export const DEFAULT_PASS_OVERHEAD_MS = 1;
/**
 * Device (non-RAM) state sent while the guest is paused: CPU registers, virtio queues, timers…
 * A few hundred KiB for a small VM; it is what makes an idle guest's downtime 1–5 ms (§9), not 0.
 */
export const DEFAULT_DEVICE_STATE_BYTES = 256 * 1024;
/** Fixed cost of a switchover besides copying: stopping vCPUs, the last sync, the target's resume. */
export const DEFAULT_SWITCHOVER_FIXED_MS = 2;
/**
 * A safety bound on the number of pre-copy passes. QEMU has none (it iterates until told otherwise);
 * the model needs one so that a run with no policy ends. §9 measured 60 passes in 30 s.
 */
export const DEFAULT_MAX_PASSES = 1000;
/** Hard upper bound for maxPasses (keeps a simulation's memory bounded). */
export const MAX_MAX_PASSES = 100_000;
/** Relative slack in "remaining fits the downtime budget", so that exact hand cases are not lost to rounding. */
export const FIT_RELATIVE_EPSILON = 1e-9;
