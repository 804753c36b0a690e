import { z } from 'zod';

/**
 * How a migration may converge; handed to the agents with every step command.
 * Defaults are QEMU 7.2's and KubeVirt's, so a user who sets nothing gets the behaviour those
 * projects' users know (reference/qemu-migration.md §3; KubeVirt MigrationConfiguration).
 */
export const defaultDowntimeLimitMs = 300; // QEMU's downtime-limit default
export const defaultCompletionTimeoutPerGiBSec = 150; // KubeVirt's completionTimeoutPerGiB
export const defaultProgressTimeoutSec = 150; // KubeVirt's progressTimeout

export const MigrationPolicySchema = z.object({
  downtimeLimitMs: z.number().int().min(1).max(60_000).default(defaultDowntimeLimitMs),
  /** MiB/s; absent means uncapped (QEMU's own 128 MiB/s default cap is lifted explicitly). */
  bandwidthMiBps: z.number().int().min(1).max(100_000).optional(),
  completionTimeoutPerGiBSec: z.number().int().min(1).max(3600).default(defaultCompletionTimeoutPerGiBSec),
  progressTimeoutSec: z.number().int().min(1).max(3600).default(defaultProgressTimeoutSec),
  autoConverge: z.boolean().default(true),
  postCopy: z.boolean().default(false),
});
export type MigrationPolicy = z.infer<typeof MigrationPolicySchema>;
export const MigrationPolicyInputSchema = MigrationPolicySchema.partial();
export type MigrationPolicyInput = z.infer<typeof MigrationPolicyInputSchema>;
