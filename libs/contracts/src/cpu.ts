import { z } from 'zod';
import { defineRequest } from './define';
import { VendorSchema } from './common';

export const CpuidRowSchema = z.object({
  leaf: z.union([z.number().int().min(0), z.string()]),
  subleaf: z.union([z.number().int().min(0), z.string()]).default(0),
  eax: z.union([z.number().int().min(0), z.string()]),
  ebx: z.union([z.number().int().min(0), z.string()]),
  ecx: z.union([z.number().int().min(0), z.string()]),
  edx: z.union([z.number().int().min(0), z.string()]),
});
export type CpuidRow = z.infer<typeof CpuidRowSchema>;

/** A host's CPU in one of three forms. */
export const EvaluateCpuSchema = z.union([
  z.object({ cpuinfo: z.string().min(1, 'cpuinfo is empty') }).strict(),
  z.object({ cpuid: z.array(CpuidRowSchema).min(1, 'cpuid has no rows') }).strict(),
  z.object({ features: z.array(z.string().min(1)), vendor: VendorSchema.optional() }).strict(),
]);
export type EvaluateCpu = z.infer<typeof EvaluateCpuSchema>;

export const LadderEntrySchema = z.object({
  mode: z.string(),
  order: z.number(),
  /** true: a generation's TSX mode; false: its -noTSX sibling; null: no TSX distinction. */
  tsx: z.boolean().nullable(),
  supported: z.boolean(),
  missing: z.array(z.string()),
});

export const CpuEvaluationSchema = z.object({
  vendor: VendorSchema,
  modelName: z.string().optional(),
  features: z.array(z.string()),
  /** Highest IMC mode; null for a vendor without a ladder (Zhaoxin/VIA: passthrough only) or when no mode fits. */
  maxImcMode: z.string().nullable(),
  /** Why maxImcMode is what it is; for null, what the host can still join (a cluster with IMC off). */
  reason: z.string().optional(),
  ladder: z.array(LadderEntrySchema),
  /** Highest x86-64 psABI level (x86-64-v1..v4). */
  psabiLevel: z.string().nullable(),
  /** Features a guest gets although the host does not report them (hypervisor-supplied; Intel's 64-bit-only syscall). */
  assumed: z.array(z.string()),
  /** Input names that are no catalog feature (ignored). */
  unknown: z.array(z.string()),
  notes: z.array(z.string()),
});
export type CpuEvaluation = z.infer<typeof CpuEvaluationSchema>;

export const EvaluateCpuRequest = defineRequest({
  subject: 'cpu.evaluate',
  description: 'Evaluates a host CPU: vendor, features, highest supported baseline (IMC mode).',
  request: EvaluateCpuSchema,
  reply: CpuEvaluationSchema,
});

export const VerdictRequestSchema = z.object({
  baseline: z.string().min(1),
  target: z.object({ vendor: VendorSchema, features: z.array(z.string()) }),
  /**
   * Features of the host a `host-passthrough` VM started on (it saw that host's CPU); required for that
   * baseline, where the target must have exactly the same set. Ignored for named baselines.
   */
  vmFeatures: z.array(z.string()).optional(),
});
export const VerdictSchema = z.object({
  compatible: z.boolean(),
  baseline: z.string(),
  missing: z.array(z.string()),
  vendorMismatch: z.boolean(),
  /** MSR features of the baseline: CPUID and /proc/cpuinfo cannot show them, so they are not checked. */
  unchecked: z.array(z.string()),
  reason: z.string(),
});
export type Verdict = z.infer<typeof VerdictSchema>;

export const CpuVerdict = defineRequest({
  subject: 'cpu.verdict',
  description: 'Saga step 1: may a VM with this baseline run on the target host?',
  request: VerdictRequestSchema,
  reply: VerdictSchema,
});

export const CpuModelSchema = z.object({
  name: z.string(),
  aliases: z.array(z.string()),
  vendor: VendorSchema.nullable(),
  ladder: z.string(),
  order: z.number(),
  /** The `-cpu` argument that presents exactly this baseline to a QEMU guest. */
  qemuCpu: z.string(),
  features: z.array(z.string()),
});
export type CpuModel = z.infer<typeof CpuModelSchema>;

export const GetCpuModel = defineRequest({
  subject: 'cpu.model.get',
  description: 'One CPU baseline (IMC mode) of the catalog, by name or alias.',
  request: z.object({ name: z.string().min(1) }),
  reply: z.object({ model: CpuModelSchema }),
});

export const PlanHostSchema = z.object({ id: z.string().min(1), vendor: VendorSchema, features: z.array(z.string()) });
export type PlanHost = z.infer<typeof PlanHostSchema>;

/**
 * Hosts that share one CPU (vendor and feature list). A fleet has a handful of CPU kinds, so a cluster's
 * hosts sent as groups carry each feature list once: 1,000 hosts of a current CPU (about 1.3 KB of features
 * each) sent one by one are more than NATS's 1 MiB max_payload; grouped, a few KB and their ids.
 */
export const CpuGroupSchema = z.object({ vendor: VendorSchema, features: z.array(z.string()), hostIds: z.array(z.string().min(1)).min(1) });
export type CpuGroup = z.infer<typeof CpuGroupSchema>;

/**
 * The hosts of a cluster-wide CPU request: grouped by CPU (`cpus`, what inventory sends), one by one
 * (`hosts`, the form before `cpus`, still accepted), or both. A host id may appear once in all.
 */
export const HostSetSchema = z.object({ hosts: z.array(PlanHostSchema).optional(), cpus: z.array(CpuGroupSchema).optional() });

/** The checks of a host set beyond its fields: at least one host (unless `atLeastOne` is null), no host twice. */
export const checkHostSet =
  (atLeastOne: string | null) =>
  (r: { hosts?: PlanHost[]; cpus?: CpuGroup[] }, ctx: z.RefinementCtx): void => {
    const ids = [...(r.hosts ?? []).map((h) => h.id), ...(r.cpus ?? []).flatMap((g) => g.hostIds)];
    if (atLeastOne !== null && ids.length === 0) ctx.addIssue({ code: 'custom', message: atLeastOne, path: ['cpus'] });
    const seen = new Set<string>();
    const twice = ids.find((id) => seen.size === seen.add(id).size);
    if (twice !== undefined) ctx.addIssue({ code: 'custom', message: `host ${twice} is given twice`, path: ['cpus'] });
  };

/** The hosts of a host set one by one, in the order given: `hosts` first, then each group's. */
export const hostsOfSet = (r: { hosts?: PlanHost[]; cpus?: CpuGroup[] }): PlanHost[] => [
  ...(r.hosts ?? []),
  ...(r.cpus ?? []).flatMap((g) => g.hostIds.map((id) => ({ id, vendor: g.vendor, features: g.features }))),
];

/** Hosts grouped by CPU (same vendor, same features in the same order), groups and ids in first-seen order. */
export function groupByCpu(hosts: readonly PlanHost[]): CpuGroup[] {
  const groups = new Map<string, CpuGroup>();
  // hosts read together share one array per feature list (inventory's reads): its key is built once
  const keys = new Map<readonly string[], { vendor: string; key: string }>();
  for (const h of hosts) {
    const known = keys.get(h.features);
    const key = known?.vendor === h.vendor ? known.key : JSON.stringify([h.vendor, h.features]);
    if (!known) keys.set(h.features, { vendor: h.vendor, key });
    const g = groups.get(key);
    if (g) g.hostIds.push(h.id);
    else groups.set(key, { vendor: h.vendor, features: h.features, hostIds: [h.id] });
  }
  return [...groups.values()];
}

export const ClusterPlanSchema = z.object({
  /** Highest mode every host supports; null when none (say why in `reason`). */
  mode: z.string().nullable(),
  reason: z.string(),
  /** The hosts whose own highest mode is the cluster's: they hold it down. */
  holdingDown: z.array(z.string()),
  /** What the mode would be without each host. */
  withoutHost: z.array(z.object({ hostId: z.string(), mode: z.string().nullable() })),
  hostModes: z.array(z.object({ hostId: z.string(), mode: z.string().nullable() })),
});
export type ClusterPlan = z.infer<typeof ClusterPlanSchema>;

export const PlanCluster = defineRequest({
  subject: 'cpu.cluster.plan',
  description: 'The mode a set of hosts would get, which hosts hold it down, and the mode without each (hosts grouped by CPU in `cpus`).',
  request: HostSetSchema.superRefine(checkHostSet('a plan needs at least one host')),
  reply: ClusterPlanSchema,
});
