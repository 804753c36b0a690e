import { z } from 'zod';
import { MAX_PAGE_LIMIT, PageQuerySchema } from './lists';
import { defineMessage, defineRequest } from './define';
import { VerdictSchema } from './cpu';
import type { PlacementRule } from './scheduler';
import { DriverSchema, HostCpuSchema, HostIdSchema, IsoTimeSchema, MemoryMiBSchema, NameSchema, UuidSchema, VcpusSchema, VendorSchema } from './common';

// ---- resources (HTTP bodies and NATS replies share them) ----

/**
 * Overcommit, per cluster (Nova's allocation ratios): a host holds VMs up to its vCPUs × cpuAllocationRatio
 * and its memory × memoryAllocationRatio. vCPUs are time-shared, so 4 per core is the default; memory is
 * not overcommitted by default (a guest that touches memory the host lacks is swapped or killed).
 */
export const DEFAULT_CPU_ALLOCATION_RATIO = 4;
export const DEFAULT_MEMORY_ALLOCATION_RATIO = 1;
export const CpuAllocationRatioSchema = z.number().min(0.01).max(64).describe('vCPUs a host may hold per physical vCPU (default 4.0)');
export const MemoryAllocationRatioSchema = z.number().min(0.01).max(8).describe('memory a host may hold per MiB it has (default 1.0)');
export const AllocationRatiosSchema = z.object({ cpuAllocationRatio: CpuAllocationRatioSchema, memoryAllocationRatio: MemoryAllocationRatioSchema });
export type AllocationRatios = z.infer<typeof AllocationRatiosSchema>;
export const DEFAULT_ALLOCATION_RATIOS: AllocationRatios = { cpuAllocationRatio: DEFAULT_CPU_ALLOCATION_RATIO, memoryAllocationRatio: DEFAULT_MEMORY_ALLOCATION_RATIO };

/**
 * What a host may hold: its size times its cluster's ratios, rounded down (with a tolerance for binary
 * fractions, so that 100 × 1.15 is 115, not 114).
 */
export const hostCapacity = (size: { memoryMiB: number; vcpus: number }, r: AllocationRatios): { memoryMiB: number; vcpus: number } => ({
  memoryMiB: Math.floor(size.memoryMiB * r.memoryAllocationRatio + 1e-9),
  vcpus: Math.floor(size.vcpus * r.cpuAllocationRatio + 1e-9),
});

export const ClusterSchema = z.object({
  id: UuidSchema,
  name: NameSchema,
  /** The cluster's CPU baseline (IMC mode); null = not set: VMs get the highest mode every host passes. */
  imcMode: z.string().nullable(),
  ...AllocationRatiosSchema.shape,
  createdAt: IsoTimeSchema,
  /** Its hosts, counted with the cluster, so that a list of clusters need not read every host to show it. Absent from an inventory before it. */
  hostCount: z.number().int().min(0).optional(),
});
export type Cluster = z.infer<typeof ClusterSchema>;

export const HostStateSchema = z.enum(['up', 'down']);
export const HostSchema = z.object({
  id: HostIdSchema,
  clusterId: UuidSchema,
  hostname: z.string(),
  cpu: HostCpuSchema,
  /** Highest CPU baseline of the host's vendor ladder that it supports (cpu-compat). */
  maxImcMode: z.string().nullable(),
  memoryMiB: MemoryMiBSchema,
  vcpus: VcpusSchema,
  /** Memory and vCPUs held by VMs and by reservations of incoming migrations. */
  allocatedMemoryMiB: z.number().int().min(0),
  allocatedVcpus: z.number().int().min(0),
  /** Its cluster's allocation ratios, and what the host may hold with them (hostCapacity). */
  ...AllocationRatiosSchema.shape,
  capacityMemoryMiB: z.number().int().min(0),
  capacityVcpus: z.number().int().min(0),
  driver: DriverSchema,
  /** host:port other agents reach this host on for migration traffic. */
  migrationAddress: z.string(),
  state: HostStateSchema,
  maintenance: z.boolean(),
  lastHeartbeatAt: IsoTimeSchema,
  registeredAt: IsoTimeSchema,
  /** The agent process that owns the host (random per agent start; null before the first registration that carried one). */
  agentInstanceId: z.string().nullable().optional(),
  /**
   * The VMs inventory records on the host, in every state (`GET /api/v1/vms?hostId=` lists them). Counted
   * with the host, so that a list of hosts need not read every VM to show it. Absent from an inventory
   * before it.
   */
  vmCount: z.number().int().min(0).optional(),
});
export type Host = z.infer<typeof HostSchema>;

/** The digest that names a CPU feature list in a page (`featureSets`): the hosts of one CPU kind share it. */
export const FeatureSetDigestSchema = z.string().min(1).max(64);

/**
 * A host in a list: as `Host`, but its CPU's feature list is named by its digest (`cpu.featureSet`), and the
 * page carries each list once (`featureSets`). A fleet has a handful of CPU kinds, and a list is 0.4 KB
 * (IvyBridge) to 1.4 KB (DiamondRapids) of a host's 1 to 2 KB: a page of 1,000 hosts is about 650 KB
 * either way, where it was 1.05 to 2 MB, more than one NATS message holds. `GET /api/v1/hosts/:id` gives
 * one host with its list.
 */
export const HostListItemSchema = HostSchema.extend({
  cpu: z.object({ vendor: VendorSchema, modelName: z.string(), featureSet: FeatureSetDigestSchema }),
});
export type HostListItem = z.infer<typeof HostListItemSchema>;

/** The feature lists of a page's hosts, each once, under the digest its hosts name. */
export const FeatureSetsSchema = z.record(FeatureSetDigestSchema, z.array(z.string()));

/** GET /api/v1/hosts: a page of hosts, each feature list once (`featureSets[host.cpu.featureSet]`). */
export const HostPageSchema = z.object({ items: z.array(HostListItemSchema), featureSets: FeatureSetsSchema, nextCursor: z.string().nullable() });
export type HostPage = z.infer<typeof HostPageSchema>;

/** A listed host with its feature list again, from its page's `featureSets` (a host whose list the page lacks gets none). */
export const withFeatures = (h: HostListItem, featureSets: Readonly<Record<string, string[]>>): Host => ({
  ...h,
  cpu: { vendor: h.cpu.vendor, modelName: h.cpu.modelName, features: featureSets[h.cpu.featureSet] ?? [] },
});

export const VmStateSchema = z.enum(['starting', 'running', 'stopped', 'error']);
export type VmState = z.infer<typeof VmStateSchema>;
export const VmSchema = z.object({
  id: UuidSchema,
  name: NameSchema,
  clusterId: UuidSchema,
  hostId: HostIdSchema,
  memoryMiB: MemoryMiBSchema,
  vcpus: VcpusSchema,
  /** The CPU baseline the VM was started with; it keeps it until powered off. */
  cpuBaseline: z.string(),
  /** Only for baseline `host-passthrough` (IMC off): the features of the host the VM started on. */
  cpuFeatures: z.array(z.string()).optional(),
  state: VmStateSchema,
  createdAt: IsoTimeSchema,
  updatedAt: IsoTimeSchema,
});
export type Vm = z.infer<typeof VmSchema>;

// ---- HTTP requests ----

export const CreateClusterSchema = z
  .object({ name: NameSchema, imcMode: z.string().min(1).optional(), cpuAllocationRatio: CpuAllocationRatioSchema.optional(), memoryAllocationRatio: MemoryAllocationRatioSchema.optional() })
  .strict();
export type CreateCluster = z.infer<typeof CreateClusterSchema>;

/** A change of a cluster's allocation ratios: either or both. */
export const UpdateAllocationRatiosSchema = AllocationRatiosSchema.partial()
  .strict()
  .refine((b) => b.cpuAllocationRatio !== undefined || b.memoryAllocationRatio !== undefined, { message: 'give cpuAllocationRatio, memoryAllocationRatio or both' });
export type UpdateAllocationRatios = z.infer<typeof UpdateAllocationRatiosSchema>;

export const CreateVmSchema = z
  .object({
    name: NameSchema,
    hostId: HostIdSchema,
    memoryMiB: MemoryMiBSchema,
    vcpus: VcpusSchema,
    /** Defaults to the cluster's IMC mode, or the highest mode every host of the cluster passes. */
    cpuBaseline: z.string().min(1).optional(),
  })
  .strict();
export type CreateVm = z.infer<typeof CreateVmSchema>;

// ---- NATS: agent → inventory ----

/** How many VMs one agent may report: far above a host's capacity, a bound on the message's size. */
export const MAX_REPORTED_VMS = 1_000;
/** A VM as the agent that holds it sees it (`incoming`: a paused copy waiting for a migration stream). */
export const AgentVmStateSchema = z.enum(['running', 'paused', 'incoming', 'stopped']);
export type AgentVmState = z.infer<typeof AgentVmStateSchema>;
export const ReportedVmSchema = z.object({ vmId: UuidSchema, state: AgentVmStateSchema, migrationId: UuidSchema.optional() });
export type ReportedVm = z.infer<typeof ReportedVmSchema>;
export const ReportedVmsSchema = z.array(ReportedVmSchema).max(MAX_REPORTED_VMS);
/** An agent process: random per start, so that two processes with one HOST_ID are told apart. */
export const AgentInstanceIdSchema = UuidSchema;
/** Digest of an agent's VM set (`vmDigest` in libs/contracts): hex, fixed length. */
export const VmDigestSchema = z.string().regex(/^[0-9a-f]{16}$/, 'expected 16 hex digits');

export const HostRegistrationSchema = z
  .object({
    hostId: HostIdSchema,
    clusterId: UuidSchema.optional(),
    /** Used when no clusterId is given: the cluster of that name, created if missing. */
    clusterName: NameSchema.optional(),
    hostname: z.string(),
    cpu: HostCpuSchema,
    memoryMiB: MemoryMiBSchema,
    vcpus: VcpusSchema,
    driver: DriverSchema,
    migrationAddress: z.string().min(1),
    /** The agent process registering: a live host refuses another process's registration (docs/reconciliation.md). */
    instanceId: AgentInstanceIdSchema,
    /** Every VM the agent holds right now, as it sees it: what inventory reconciles its records with. */
    vms: ReportedVmsSchema.default([]),
  })
  .refine((r) => r.clusterId !== undefined || r.clusterName !== undefined, {
    message: 'a host names its cluster by clusterId or clusterName',
  });
export type HostRegistration = z.infer<typeof HostRegistrationSchema>;

export const RegisterHost = defineRequest({
  subject: 'inventory.host.{hostId}.register',
  description: "An agent registers (or re-registers) its host. The subject's host id must be the body's (NATS permissions confine an agent to its own).",
  request: HostRegistrationSchema,
  reply: z.object({ host: HostSchema, cluster: ClusterSchema }),
});

export const HostHeartbeat = defineMessage({
  subject: 'inventory.host.{hostId}.heartbeat',
  description: "An agent says its host is alive; a host silent for HOST_DOWN_AFTER_MS is marked down. The subject's host id must be the body's.",
  message: z.object({
    hostId: HostIdSchema,
    at: IsoTimeSchema,
    vmCount: z.number().int().min(0),
    /** Only the process that registered the host may heartbeat for it; others' beats are ignored. */
    instanceId: AgentInstanceIdSchema,
    /** vmDigest of the agent's VM set: inventory asks for the list (agent.{hostId}.vm.list) when its copy differs. */
    vmDigest: VmDigestSchema,
    /** The full VM set, sent when the digest changed and every few beats (AGENT_VM_REPORT_EVERY_BEATS). */
    vms: ReportedVmsSchema.optional(),
  }),
});

// ---- NATS: scheduler → inventory ----

export const GetHost = defineRequest({
  subject: 'inventory.host.get',
  description: 'One host by id.',
  request: z.object({ hostId: HostIdSchema }),
  reply: z.object({ host: HostSchema }),
});

export const ListHosts = defineRequest({
  subject: 'inventory.host.list',
  description:
    'A page of the hosts of a cluster (or all), by id (limit, cursor; nextCursor null on the last page), each CPU feature list once in ' +
    '`featureSets` under the digest its hosts name (`cpu.featureSet`).',
  request: z.object({ clusterId: UuidSchema.optional(), ...PageQuerySchema.shape }),
  reply: z.object({ hosts: z.array(HostListItemSchema), featureSets: FeatureSetsSchema, nextCursor: z.string().nullable() }),
});

/**
 * A host as placement weighs it: its capacity, its load and its state, with its CPU named by the digest of
 * its feature list (`featureSet`): a fleet has a handful of CPU kinds, so each list travels once per page.
 */
export const PlacementHostSchema = HostSchema.pick({
  id: true,
  clusterId: true,
  memoryMiB: true,
  vcpus: true,
  allocatedMemoryMiB: true,
  allocatedVcpus: true,
  cpuAllocationRatio: true,
  memoryAllocationRatio: true,
  capacityMemoryMiB: true,
  capacityVcpus: true,
  driver: true,
  state: true,
  maintenance: true,
}).extend({ cpu: z.object({ vendor: VendorSchema, featureSet: FeatureSetDigestSchema }) });
export type PlacementHost = z.infer<typeof PlacementHostSchema>;

/**
 * The rules of placement that inventory can check on its own (scheduler placement.ts checks them in this
 * order, then the CPU): not the VM's source, up, not in maintenance, room for the VM's memory, then its
 * vCPUs, before the load the scheduler has promised to its own admitted migrations.
 */
export const PLACEMENT_RULES_IN_INVENTORY = ['source', 'down', 'maintenance', 'memory', 'vcpus'] as const satisfies readonly PlacementRule[];

/**
 * One VM's placement (`for`): instead of every host of the cluster, inventory lists every host in `include`
 * (those the scheduler has inbound migrations to: their promised load is its to add) and, of each CPU
 * (vendor and feature set), the `perCpu` hosts that pass the rules it can check with the lowest memory
 * utilisation after placement ((held + the VM) / capacity, then id), and the first `named` by id of those
 * failing a rule and of each CPU's passing ones. The others are only counted, by the first rule they fail,
 * or by CPU when they pass them all: a host left out ranks after `perCpu` listed hosts of its CPU that pass
 * every rule, and after `named` listed hosts in id order, so the placement's choice, counts and named hosts
 * are those of the whole list.
 */
export const PlacementForSchema = z.object({
  memoryMiB: MemoryMiBSchema,
  vcpus: VcpusSchema,
  sourceHostId: HostIdSchema,
  include: z.array(HostIdSchema).max(MAX_PAGE_LIMIT),
  perCpu: z.number().int().min(1).max(MAX_PAGE_LIMIT),
  /** Listed too: the first `named` hosts by id that fail a rule, and of each CPU the first `named` passing ones (those a placement names with why). */
  named: z.number().int().min(0).max(MAX_PAGE_LIMIT),
});
export type PlacementFor = z.infer<typeof PlacementForSchema>;

/** The hosts of a placement (`for`) that inventory did not list: by the first rule they fail, and by CPU those that pass. */
export const PlacementUnlistedSchema = z.object({
  byRule: z.object(Object.fromEntries(PLACEMENT_RULES_IN_INVENTORY.map((r) => [r, z.number().int().min(0)])) as Record<(typeof PLACEMENT_RULES_IN_INVENTORY)[number], z.ZodNumber>),
  passing: z.array(z.object({ vendor: VendorSchema, featureSet: FeatureSetDigestSchema, count: z.number().int().min(1) })),
});
export type PlacementUnlisted = z.infer<typeof PlacementUnlistedSchema>;

export const ListPlacementHosts = defineRequest({
  subject: 'inventory.host.placement-list',
  description:
    "A page of a cluster's hosts as placement weighs them (by id; limit, cursor; nextCursor null on the last page), each CPU feature list " +
    'once in `featureSets` under the digest its hosts name: a page of 1,000 hosts is about 360 KB. With `for` (one VM\'s placement), ' +
    'one answer of the hosts worth weighing for it (`cursor` and `limit` do not apply), and `unlisted`, the count of the others. An answer to `for` without `unlisted` ' +
    '(an older inventory, or a cluster of more CPUs than one answer holds) is no placement answer: read every page without `for` then.',
  request: z.object({ clusterId: UuidSchema, ...PageQuerySchema.shape, for: PlacementForSchema.optional() }),
  reply: z.object({
    hosts: z.array(PlacementHostSchema),
    featureSets: FeatureSetsSchema,
    nextCursor: z.string().nullable(),
    unlisted: PlacementUnlistedSchema.optional(),
  }),
});

export const GetVm = defineRequest({
  subject: 'inventory.vm.get',
  description: 'One VM by id.',
  request: z.object({ vmId: UuidSchema }),
  reply: z.object({ vm: VmSchema }),
});

export const ReservationSchema = z.object({
  migrationId: UuidSchema,
  vmId: UuidSchema,
  hostId: HostIdSchema,
  memoryMiB: MemoryMiBSchema,
  vcpus: VcpusSchema,
  createdAt: IsoTimeSchema,
});
export type Reservation = z.infer<typeof ReservationSchema>;

export const ReserveCapacity = defineRequest({
  subject: 'inventory.reservation.create',
  description:
    "Saga step 1 in one request: the target must be up, out of maintenance, in the VM's cluster, with room, and its CPU must run the VM's " +
    "baseline (cpu-compat's verdict, asked by inventory; CPU_INCOMPATIBLE names the missing features); then the VM's memory and vCPUs are held " +
    'there. Idempotent per migration. The reply carries the verdict the reservation was made under.',
  request: z.object({ migrationId: UuidSchema, vmId: UuidSchema, hostId: HostIdSchema }),
  reply: z.object({ reservation: ReservationSchema, verdict: VerdictSchema }),
});

export const GetReservation = defineRequest({
  subject: 'inventory.reservation.get',
  description:
    "A migration's reservation, or null: what an agent checks before it takes part in a migration (the reservation proves that the scheduler " +
    'started it, for that VM and that target host). With it, the migration address its host registered: where a source may send memory.',
  request: z.object({ migrationId: UuidSchema }),
  reply: z.object({
    reservation: ReservationSchema.nullable(),
    /**
     * The reserved host's registered migration address (null with no reservation). Absent from an inventory older than this field,
     * whose answer still parses: a source agent then refuses its entry step (UNTRUSTED_ADDRESS) and sends nothing.
     */
    targetMigrationAddress: z.string().min(1).nullable().optional(),
  }),
});

/**
 * Inventory's word to a migration's two agents, on each one's own subject, of the reservation it has just
 * made at step 1 (`reservation` with the target's registered migration address) or released
 * (`reservation: null`). Only inventory may publish on it (NATS permissions). An agent takes a reservation
 * it was told of for its entry step (the target's 2, the source's 3) once, within
 * RESERVATION_NOTICE_KEPT_MS, instead of asking `inventory.reservation.get`; without one (lost, late, the
 * agent restarted, an inventory older than it) it asks as before.
 */
export const ReservationNotice = defineMessage({
  subject: 'agent.{hostId}.reservation.notice',
  description:
    "Inventory tells a migration's source and target agents of the reservation it made at step 1, or released: an agent's entry step " +
    'takes it once instead of asking inventory.reservation.get (and asks when it has none). Only inventory may publish here.',
  message: z.object({
    migrationId: UuidSchema,
    reservation: ReservationSchema.nullable(),
    /** The reserved host's registered migration address (null with no reservation): where a source may send memory. */
    targetMigrationAddress: z.string().min(1).nullable(),
  }),
});
/** How long an agent keeps a reservation inventory told it of, unused: the entry steps follow step 1 within milliseconds. */
export const RESERVATION_NOTICE_KEPT_MS = 30_000;

export const ReleaseCapacity = defineRequest({
  subject: 'inventory.reservation.release',
  description: 'Compensation of step 1. Idempotent: releasing twice is fine.',
  request: z.object({ migrationId: UuidSchema }),
  reply: z.object({ released: z.boolean() }),
});

export const RelocateVm = defineRequest({
  subject: 'inventory.vm.relocate',
  description:
    'Saga step 9: the VM now runs on the target; the reservation becomes its allocation. Idempotent per migration. ' +
    "Refused (RESERVATION_MISMATCH) unless the migration's reservation is for that VM and that target host.",
  request: z.object({ migrationId: UuidSchema, vmId: UuidSchema, fromHostId: HostIdSchema, toHostId: HostIdSchema }),
  reply: z.object({ vm: VmSchema }),
});
