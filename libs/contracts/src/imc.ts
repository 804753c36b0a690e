import { z } from 'zod';
import { defineRequest } from './define';
import { checkHostSet, type ClusterPlan, ClusterPlanSchema, type CpuGroup, HostSetSchema } from './cpu';

// ---- cluster CPU mode (IMC): names shared by inventory, cpu-compat and the scheduler ----

/** The cluster mode that turns IMC off: every VM sees its host's own CPU (host passthrough). */
export const IMC_OFF = 'off';
/**
 * The baseline a VM records when it starts in a cluster whose IMC is off. Its CPU is the host's, so the VM
 * also records that host's features, and may only move to a host with exactly the same feature set.
 */
export const HOST_PASSTHROUGH_BASELINE = 'host-passthrough';

export const ModeVerificationSchema = z.object({
  /** Canonical name of the mode checked. */
  mode: z.string(),
  /** True when every host passes. */
  pass: z.boolean(),
  hosts: z.array(
    z.object({
      hostId: z.string(),
      pass: z.boolean(),
      /** Features of the mode the host lacks. */
      missing: z.array(z.string()),
      vendorMismatch: z.boolean(),
      reason: z.string(),
    }),
  ),
});
export type ModeVerification = z.infer<typeof ModeVerificationSchema>;

export const VerifyCpuMode = defineRequest({
  subject: 'cpu.mode.verify',
  description: 'Checks every given host against one mode (hosts grouped by CPU in `cpus`): per host pass/fail with the features it lacks.',
  request: HostSetSchema.extend({ mode: z.string().min(1) }).superRefine(checkHostSet(null)),
  reply: ModeVerificationSchema,
});

export const LadderModeSchema = z.object({
  name: z.string(),
  order: z.number(),
  tsx: z.boolean().nullable(),
  features: z.array(z.string()),
});

export const ListCpuModes = defineRequest({
  subject: 'cpu.mode.ladder',
  description: "A vendor's IMC ladder, highest mode first (the order `auto` tries them in).",
  request: z.object({ vendor: z.enum(['Intel', 'AMD', 'Hygon', 'Zhaoxin']) }),
  reply: z.object({ vendor: z.string(), modes: z.array(LadderModeSchema) }),
});

// ---- HTTP bodies of /api/v1/clusters/:id/imc ----

/** A mode name (any case or alias), `"off"` (host passthrough), or null (unset: the hosts' common mode). */
export const SetImcModeSchema = z
  .object({
    mode: z.union([z.string().trim().min(1, 'mode is empty: give a mode name, "off", or null'), z.null()]),
    /**
     * Ignored, accepted so that older clients keep working: who asks is the bearer token's `sub`, recorded
     * as `by` in the cluster.imc-mode-changed event. A body cannot name someone else.
     */
    by: z.string().trim().min(1).max(200).optional(),
  })
  .strict();
export type SetImcMode = z.infer<typeof SetImcModeSchema>;

export const VerifyImcModeSchema = z.object({ mode: z.string().trim().min(1, 'mode is empty') }).strict();
export type VerifyImcMode = z.infer<typeof VerifyImcModeSchema>;

/** `by` is ignored, as in SetImcModeSchema: who asks is the bearer token's `sub`. */
export const AutoImcModeSchema = z.object({ by: z.string().trim().min(1).max(200).optional() }).strict();
export type AutoImcMode = z.infer<typeof AutoImcModeSchema>;

export const ClusterImcSchema = z.object({
  clusterId: z.string(),
  /** As set: a mode name, "off", or null. */
  mode: z.string().nullable(),
  passthrough: z.boolean(),
  /** The baseline a new VM gets: the mode, "host-passthrough" when off, else the hosts' common mode. */
  effectiveMode: z.string().nullable(),
  /** The highest mode every host passes (the mode cannot be set above it). */
  commonMode: z.string().nullable(),
  holdingDown: z.array(z.string()),
  hosts: z.array(z.object({ hostId: z.string(), vendor: z.string(), modelName: z.string(), maxImcMode: z.string().nullable(), state: z.string() })),
});
export type ClusterImc = z.infer<typeof ClusterImcSchema>;

/**
 * `GET /api/v1/clusters/:id/imc/plan`: cpu-compat's plan over the cluster's registered hosts. The highest
 * mode every host passes today, the hosts that hold it down, the mode without each host, and each host's
 * own highest mode. A cluster without hosts has no mode (`mode: null`, the reason says so).
 */
export const ClusterImcPlanSchema = ClusterPlanSchema.extend({ clusterId: z.string() });
export type ClusterImcPlan = z.infer<typeof ClusterImcPlanSchema>;

// ---- a cluster-wide CPU question asked of one host per CPU ----

/**
 * A plan and a verification depend on each host's CPU (its vendor and features) and on which CPUs the
 * cluster has, not on how many hosts have each: so inventory asks cpu-compat about one host per CPU (the
 * first of each group) and answers for every host from that. Exact, by planCluster's rules
 * (libs/cpu-models, cluster.ts): a host's own mode is its CPU's; without a host whose CPU another host
 * shares, the cluster keeps every CPU and so its mode; without the only host of a CPU, the mode is the one
 * the representatives' plan gives for it (another host of its vendor remains exactly when another CPU of
 * that vendor does); the hosts holding the mode down follow from those two, by the same rule. A property
 * test holds this to planCluster over every host (apps/cpu-compat, cpu-representatives.spec.ts).
 */
export const representativesOf = (groups: readonly CpuGroup[]): CpuGroup[] => groups.map((g) => ({ ...g, hostIds: [g.hostIds[0]!] }));

/** Each host's group (whose first host is its representative); a host of no group is an error that names it. */
function groupOfHost(groups: readonly CpuGroup[]): (hostId: string) => CpuGroup {
  const of = new Map<string, CpuGroup>();
  for (const g of groups) for (const id of g.hostIds) of.set(id, g);
  return (hostId) => {
    const g = of.get(hostId);
    if (!g) throw new Error(`host ${hostId} is in no CPU group of the plan`);
    return g;
  };
}

/** The plan of the representatives (`representativesOf(groups)`) as the plan of every host, in `order`. */
export function planForEveryHost(plan: ClusterPlan, groups: readonly CpuGroup[], order: readonly string[]): ClusterPlan {
  const own = new Map(plan.hostModes.map((h) => [h.hostId, h.mode]));
  const without = new Map(plan.withoutHost.map((h) => [h.hostId, h.mode]));
  const groupsInOrder = order.map(groupOfHost(groups));
  const hostModes = order.map((hostId, i) => ({ hostId, mode: own.get(groupsInOrder[i]!.hostIds[0]!) ?? null }));
  const withoutHost = order.map((hostId, i) => {
    const g = groupsInOrder[i]!;
    return { hostId, mode: g.hostIds.length > 1 ? plan.mode : (without.get(g.hostIds[0]!) ?? null) };
  });
  const holdingDown = order.filter((_, i) => hostModes[i]!.mode === plan.mode || withoutHost[i]!.mode !== plan.mode);
  return { mode: plan.mode, reason: plan.reason, holdingDown, withoutHost, hostModes };
}

/** The verification of the representatives as the verification of every host, in `order`. */
export function verificationForEveryHost(v: ModeVerification, groups: readonly CpuGroup[], order: readonly string[]): ModeVerification {
  const groupOf = groupOfHost(groups);
  const byRep = new Map(v.hosts.map((h) => [h.hostId, h]));
  const hosts = order.map((hostId) => {
    const rep = byRep.get(groupOf(hostId).hostIds[0]!);
    if (!rep) throw new Error(`host ${hostId} has no verdict in the verification of mode ${v.mode}`);
    return { ...rep, hostId };
  });
  return { mode: v.mode, pass: v.pass, hosts };
}
