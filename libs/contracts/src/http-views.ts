import { z } from 'zod';
import { HostIdSchema, UuidSchema } from './common';
import { ClusterPlanSchema } from './cpu';
import { ModeVerificationSchema } from './imc';
import { ClusterSchema } from './inventory';
import { MigrationPolicySchema } from './policy';

// Answers only the HTTP API gives (no NATS request carries them): the services type their answers with
// these, and the OpenAPI documents describe them from here.

/**
 * GET /api/v1/clusters/:id: the cluster, how many hosts it has, the mode its VMs get by default and the mode
 * every host supports today. The same size at any number of hosts: the hosts are a list of their own
 * (`GET /api/v1/hosts?clusterId=`, paged), the whole plan with each host's mode a route of its own
 * (`GET /api/v1/clusters/:id/imc/plan`).
 */
export const ClusterDetailSchema = ClusterSchema.extend({
  effectiveMode: z.string().nullable(),
  hostCount: z.number().int().min(0),
  /** The mode every host of the cluster supports today, or null with the reason; null: the cluster has no hosts. */
  plan: ClusterPlanSchema.pick({ mode: true, reason: true }).nullable(),
});
export type ClusterDetail = z.infer<typeof ClusterDetailSchema>;

/** PUT /api/v1/clusters/:id/imc: what the change did (`changed` false: the cluster had that mode already). */
export const ImcChangeSchema = z.object({
  clusterId: UuidSchema,
  previousMode: z.string().nullable(),
  mode: z.string().nullable(),
  changed: z.boolean(),
  by: z.string(),
  /** The check of every host against the new mode (named modes only). */
  verification: ModeVerificationSchema.optional(),
});
export type ImcChange = z.infer<typeof ImcChangeSchema>;

/** One mode `auto` tried: whether every host passes it, and the hosts that fail it with what they lack. */
export const AutoImcTrySchema = z.object({
  mode: z.string(),
  pass: z.boolean(),
  failing: z.array(z.object({ hostId: HostIdSchema, missing: z.array(z.string()), vendorMismatch: z.boolean() })),
});
export type AutoImcTry = z.infer<typeof AutoImcTrySchema>;

/** POST /api/v1/clusters/:id/imc/auto: the mode set, each mode tried from the highest down, and the change. */
export const AutoImcResultSchema = z.object({ clusterId: UuidSchema, mode: z.string(), tries: z.array(AutoImcTrySchema), change: ImcChangeSchema });
export type AutoImcResult = z.infer<typeof AutoImcResultSchema>;

/** Admission limits of a cluster; 0 = unlimited. */
export const MigrationLimitsSchema = z.object({
  maxOutboundPerHost: z.number().int().min(0),
  maxInboundPerHost: z.number().int().min(0),
  maxPerCluster: z.number().int().min(0),
});

/** GET/PUT /api/v1/clusters/:clusterId/migration-settings: the effective limits and policy, and what the cluster sets itself. */
export const ClusterSettingsSchema = z.object({
  clusterId: UuidSchema,
  limits: MigrationLimitsSchema,
  overrides: z.object({ limits: MigrationLimitsSchema.partial(), policy: MigrationPolicySchema.partial() }),
  /** The policy a migration in this cluster gets unless the request overrides fields of it. */
  policy: MigrationPolicySchema,
});
export type ClusterSettings = z.infer<typeof ClusterSettingsSchema>;

/** One CPUID register's mask that presents a baseline on a host (bits as hex strings). */
export const CpuidMaskSchema = z.object({
  leaf: z.string(),
  subleaf: z.number().int(),
  register: z.enum(['EAX', 'EBX', 'ECX', 'EDX']),
  hostBits: z.string(),
  baselineBits: z.string(),
  /** Bits the guest may see: baseline ∩ host. */
  mask: z.string(),
});

/** GET /api/v1/cpu/models/:name/masks?hostId=: the masks per leaf and register. */
export const CpuidMasksSchema = z.object({ model: z.string(), hostId: HostIdSchema, masks: z.array(CpuidMaskSchema) });
export type CpuidMasks = z.infer<typeof CpuidMasksSchema>;

/** `POST /api/v1/vms/:id/cpu-check`: no options (yet); an empty body or `{}`. */
export const CpuCheckRequestSchema = z.object({}).strict();
export type CpuCheckRequest = z.infer<typeof CpuCheckRequestSchema>;
