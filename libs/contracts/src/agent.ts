import { z } from 'zod';
import { defineRequest } from './define';
import { HostIdSchema, IsoTimeSchema, MAX_MEMORY_MIB, MemoryMiBSchema, NameSchema, UuidSchema, VcpusSchema } from './common';
import { AgentVmStateSchema, VmStateSchema } from './inventory';
import { MigrationPolicySchema } from './policy';
import { AgentCompensationSchema, agentCompensation, type StepName, StepNameSchema, StepNumberSchema, stepNumber } from './steps';

/**
 * Commands to one host's agent. Every subject starts with `agent.{hostId}.` so that NATS permissions can
 * confine an agent to its own subjects (DESIGN.md, Messaging).
 */

/** The highest dirty rate a VM's workload may name: 1 TiB/s, far beyond any guest's. */
export const WORKLOAD_MAX_DIRTY_RATE_MIBPS = 1024 * 1024;

export const VmSpecSchema = z.object({
  id: UuidSchema,
  name: NameSchema,
  memoryMiB: MemoryMiBSchema,
  vcpus: VcpusSchema,
  cpuBaseline: z.string().min(1),
  /**
   * Simulated guest behaviour (sim driver) or the test workload's write range (qemu driver). Bounded: a rate of
   * 1e308 MiB/s made the sim's figures Infinity, which no reply may carry (fuzz, 2026-12-08).
   */
  workload: z
    .object({
      dirtyRateMiBps: z.number().min(0).max(WORKLOAD_MAX_DIRTY_RATE_MIBPS).default(0),
      workingSetMiB: z.number().min(0).max(MAX_MEMORY_MIB).optional(),
    })
    .optional(),
});
export type VmSpec = z.infer<typeof VmSpecSchema>;

export const StartVm = defineRequest({
  subject: 'agent.{hostId}.vm.start',
  description: 'Start a VM on this host. Idempotent per VM id.',
  request: z.object({ vm: VmSpecSchema }),
  reply: z.object({ vmId: UuidSchema, state: VmStateSchema, startedAt: IsoTimeSchema }),
});

export const AgentVmSchema = z.object({
  vmId: UuidSchema,
  state: AgentVmStateSchema,
  memoryMiB: MemoryMiBSchema,
  migrationId: UuidSchema.optional(),
});
export type AgentVm = z.infer<typeof AgentVmSchema>;

export const ListAgentVms = defineRequest({
  subject: 'agent.{hostId}.vm.list',
  description: 'The VMs this agent runs, as it sees them.',
  request: z.object({}),
  reply: z.object({ hostId: HostIdSchema, vms: z.array(AgentVmSchema) }),
});

export const PauseVm = defineRequest({
  subject: 'agent.{hostId}.vm.pause',
  description:
    "Pause a VM's guest on this host and keep it (never destroyed): how inventory fences the copy of a split brain that is not its record. " +
    'Idempotent: a paused VM stays paused. Only inventory may send it.',
  request: z.object({ vmId: UuidSchema, reason: z.string().min(1).max(500) }),
  reply: z.object({ vmId: UuidSchema, state: AgentVmStateSchema, pausedAt: IsoTimeSchema }),
});

export const RoleSchema = z.enum(['source', 'target']);
export type Role = z.infer<typeof RoleSchema>;

/** Figures of a pre-copy migration, as the source measured them. */
export const TransferStatsSchema = z.object({
  passes: z.number().int().min(0),
  bytesTransferred: z.number().min(0),
  remainingBytes: z.number().min(0),
  /** The stream's rate as the agent measured it over its last seconds of sending (qemu), when it sent long enough to tell. */
  bandwidthBytesPerSec: z.number().min(0).optional(),
  downtimeMs: z.number().min(0).optional(),
  throttlePct: z.number().min(0).max(100).optional(),
});
export type TransferStats = z.infer<typeof TransferStatsSchema>;

export const StepCommandSchema = z.object({
  migrationId: UuidSchema,
  step: StepNumberSchema,
  stepName: StepNameSchema,
  attempt: z.number().int().min(1),
  role: RoleSchema,
  vm: VmSpecSchema,
  sourceHostId: HostIdSchema,
  targetHostId: HostIdSchema,
  /** The target agent's migration address (for the source's transfer). */
  targetAddress: z.string().optional(),
  /** Where the target listens for this migration's stream, as its step-2 reply said (host:port). */
  incomingAddress: z.string().optional(),
  policy: MigrationPolicySchema,
}).superRefine((c, ctx) => {
  // code acts on the name and orders by the number: a command whose two disagree is not a command
  if (stepNumber(c.stepName) !== c.step) ctx.addIssue({ code: 'custom', path: ['stepName'], message: `step ${c.step} is not ${c.stepName}` });
});
export type StepCommand = z.infer<typeof StepCommandSchema>;

export const StepReplySchema = z.object({
  migrationId: UuidSchema,
  step: StepNumberSchema,
  attempt: z.number().int().min(1),
  /** True when this answers a repeat of a command already done: the first answer, unchanged. */
  repeated: z.boolean(),
  finishedAt: IsoTimeSchema,
  stats: TransferStatsSchema.optional(),
  /**
   * When the guest stopped on the source (step 5) / started on the target (step 7): downtime as the guest saw
   * it. On step 4 (`sync-memory`): the guest already stopped inside it (QEMU's `pre-switchover`), and the
   * source agent recorded step 5 done with it (attempt 1): the scheduler takes step 5 as completed in the
   * same transition and sends step 6 next. On step 3 (`transfer-memory`): the stream reached the switchover
   * inside step 3 (a guest whose memory fits the budget after its first pass, which QEMU then follows at once
   * with the pause), and the source agent recorded steps 4 and 5 done with it (attempt 1 each, step 4 with step 3's figures): the scheduler
   * takes both as completed in the same transition and sends step 6 next.
   */
  pausedAt: IsoTimeSchema.optional(),
  /**
   * On the target's half of step 6 (`transfer-state`): the guest already runs there, resumed as soon as its
   * state had loaded (HypervisorDriver.resumesWithTransferState), and the target agent recorded step 7 done
   * with it (attempt 1): the scheduler takes step 7 as completed in the same transition and sends step 8 next.
   */
  resumedAt: IsoTimeSchema.optional(),
  /** Step 2 (qemu driver): `host:port` the target listens on for the migration stream. */
  incomingAddress: z.string().optional(),
});
export type StepReply = z.infer<typeof StepReplySchema>;

/**
 * When a step's reply (or its stored result) says it did step 5 (`pause-source`) along with it: a step 4
 * (`sync-memory`) that carries `pausedAt`, the time the guest stopped inside it (QEMU's `pre-switchover`,
 * HypervisorDriver.pausesAtSwitchover). That time, or undefined for every other step and reply. The one
 * reading of the rule: the source agent's ledger records step 5 with step 4 by it, and the saga completes
 * step 5 in step 4's transition by it.
 */
export function pausedWithSyncMemory(step: StepName, result: unknown): string | undefined {
  return step === 'sync-memory' ? timeOf(result, 'pausedAt') : undefined;
}

/**
 * When a step's reply (or its stored result) says it did steps 4 (`sync-memory`) and 5 (`pause-source`) along
 * with it: a step 3 (`transfer-memory`) that carries `pausedAt`, the time the guest stopped inside it (its
 * stream reached QEMU's `pre-switchover` before step 3 ended, HypervisorDriver.heldAtSwitchover). That time, or
 * undefined for every other step and reply. The one reading of the rule: the source agent's ledger records
 * steps 4 and 5 with step 3 by it, and the saga completes both in step 3's transition by it.
 */
export function pausedWithTransferMemory(step: StepName, result: unknown): string | undefined {
  return step === 'transfer-memory' ? timeOf(result, 'pausedAt') : undefined;
}

/** A reply's (or stored result's) `pausedAt` / `resumedAt`: a non-empty string, or undefined. */
function timeOf(result: unknown, key: 'pausedAt' | 'resumedAt'): string | undefined {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return undefined;
  const at = (result as Record<typeof key, unknown>)[key];
  return typeof at === 'string' && at.length > 0 ? at : undefined;
}

/**
 * When the target's half of step 6 (`transfer-state`) says it did step 7 (`resume-target`) along with it: its
 * reply carries `resumedAt`, the time the guest started on the target (HypervisorDriver.resumesWithTransferState).
 * That time, or undefined for every other step and reply. The one reading of the rule: the target agent's
 * ledger records step 7 with step 6 by it, and the saga completes step 7 in step 6's transition by it (it
 * passes the target's half of the step's result, `target`). From that reply on, the guest may run on the
 * target: the source copy is never resumed (the point of no return, DESIGN.md).
 */
export function resumedWithTransferState(step: StepName, targetReply: unknown): string | undefined {
  return step === 'transfer-state' ? timeOf(targetReply, 'resumedAt') : undefined;
}

export const RunStep = defineRequest({
  subject: 'agent.{hostId}.migration.step',
  description: 'Run one saga step for one VM. Idempotent per (migrationId, step, role).',
  request: StepCommandSchema,
  reply: StepReplySchema,
});

/** A compensation command: the step by name (its number must agree) and the compensation the saga names for it on that role. */
export const CompensateCommandSchema = z
  .object({ migrationId: UuidSchema, step: StepNumberSchema, stepName: StepNameSchema, compensation: AgentCompensationSchema, role: RoleSchema, vmId: UuidSchema })
  .superRefine((c, ctx) => {
    if (stepNumber(c.stepName) !== c.step) ctx.addIssue({ code: 'custom', path: ['stepName'], message: `step ${c.step} is not ${c.stepName}` });
    const expected = agentCompensation(c.stepName, c.role);
    if (c.compensation !== expected) {
      ctx.addIssue({ code: 'custom', path: ['compensation'], message: expected ? `${c.stepName} is undone on the ${c.role} by ${expected}, not ${c.compensation}` : `${c.stepName} has nothing to undo on the ${c.role}` });
    }
  });
export type CompensateCommand = z.infer<typeof CompensateCommandSchema>;

export const CompensateStep = defineRequest({
  subject: 'agent.{hostId}.migration.compensate',
  description: 'Undo a step that completed (before the point of no return), by the compensation the saga names for it. Idempotent.',
  request: CompensateCommandSchema,
  reply: z.object({ migrationId: UuidSchema, step: StepNumberSchema, done: z.boolean(), note: z.string().optional() }),
});

export const StepRecordSchema = z.object({
  step: StepNumberSchema,
  role: RoleSchema,
  attempt: z.number().int().min(1),
  status: z.enum(['in-progress', 'completed', 'failed', 'compensated']),
  reply: StepReplySchema.optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /**
   * The agent runs this step's compensation now. Kept in memory: an agent that restarted runs none, so a
   * completed step without it (and not `compensated`) means a compensation sent to it was lost.
   */
  compensating: z.literal(true).optional(),
});
export type StepRecord = z.infer<typeof StepRecordSchema>;

export const QueryMigration = defineRequest({
  subject: 'agent.{hostId}.migration.query',
  description: 'What this agent knows of a migration: resolves a step whose reply was lost.',
  /**
   * With `step` and `attempt`: if the agent has no record of that attempt it answers so AND fences it:
   * the attempt, should its command still arrive later, is refused. This is what lets the scheduler
   * safely issue a new attempt after "not started".
   */
  request: z.object({ migrationId: UuidSchema, step: StepNumberSchema.optional(), attempt: z.number().int().min(1).optional() }),
  reply: z.object({ migrationId: UuidSchema, steps: z.array(StepRecordSchema) }),
});

/** The longest a source agent holds a {@link QueryStreamEnd} request open. */
export const STREAM_END_MAX_WAIT_MS = 10_000;

/**
 * How a migration's outgoing stream ended on its source, as the source's hypervisor says:
 * - `completed`: the stream completed; the source copy stays paused, and nothing resumes it on its own (QEMU
 *   leaves it in `postmigrate`). Only the saga's rollback could, after the target's copy was destroyed.
 * - `gone`: the VM's process is not running on the source host: no copy can run there.
 * - `failed`: the stream failed or was cancelled, or none of this migration runs there: the source copy runs
 *   again, or may (QEMU resumes a guest whose switchover failed).
 * - `active`: not ended yet when the wait ran out.
 */
export const StreamEndSchema = z.enum(['completed', 'gone', 'failed', 'active']);
export type StreamEnd = z.infer<typeof StreamEndSchema>;

export const QueryStreamEnd = defineRequest({
  subject: 'agent.{hostId}.migration.stream-end',
  description:
    "How the migration's outgoing stream ended on this (source) host, answered as soon as it ends or after waitMs. " +
    'The target agent asks before it starts the guest in its half of step 6: never while the source copy may run too.',
  request: z.object({ migrationId: UuidSchema, vmId: UuidSchema, waitMs: z.number().int().min(0).max(STREAM_END_MAX_WAIT_MS) }),
  reply: z.object({
    migrationId: UuidSchema,
    status: StreamEndSchema,
    detail: z.string().max(2000),
    /**
     * How much of the guest's memory held data on this host when the stream started (qemu: the resident part of
     * its RAM mapping, or the figure it arrived with), bytes. A target that touched the guest's memory ahead
     * keeps it, since its own resident memory then says nothing of what the guest wrote (docs/prediction.md).
     * Absent from a sim agent and from agents before it.
     */
    residentBytes: z.number().int().min(0).optional(),
  }),
});

export const CheckVmMemory = defineRequest({
  subject: 'agent.{hostId}.vm.check-memory',
  description:
    "Verify a VM's guest memory on this host (after a migration, on the target): the workload's pattern is intact and the guest still advances. " +
    'Only drivers with a real guest (qemu); others answer VALIDATION_FAILED. Pauses the guest while its memory is read.',
  request: z.object({ vmId: UuidSchema }),
  reply: z.object({
    vmId: UuidSchema,
    /** The pattern is intact (badPages = 0) and the guest advanced after the check. */
    ok: z.boolean(),
    pagesChecked: z.number().int().min(0),
    badPages: z.number().int().min(0),
    guestAdvancing: z.boolean(),
    detail: z.string(),
  }),
});

/** A CPU feature name as the catalog spells it (bounded: a reply never carries more than the catalog's 400). */
const FeatureNameSchema = z.string().min(1).max(64);
const FeatureListSchema = z.array(FeatureNameSchema).max(512);

/**
 * What a VM's guest sees of its CPU against its baseline (issue 12; libs/cpu-models README decision 9).
 * `source`: `guest` = CPUID executed inside the guest and read back over QMP (qemu driver); `model` = the
 * sim driver's model of what it presents.
 */
export const GuestCpuCheckSchema = z.object({
  vmId: UuidSchema,
  hostId: HostIdSchema,
  /** No baseline feature missing and none outside it visible (documented exceptions apart). */
  ok: z.boolean(),
  baseline: z.string().min(1).max(64),
  seen: FeatureListSchema,
  missing: FeatureListSchema,
  extra: FeatureListSchema,
  /** Differences the catalog documents (hypervisor-supplied, OS-controlled, presented by the model, TCG). */
  exceptions: z.array(z.object({ feature: FeatureNameSchema, seen: z.boolean(), reason: z.string().min(1).max(64) })).max(512),
  /** Baseline features the check cannot see (MSR features, CPUID leaves not sampled). */
  unchecked: FeatureListSchema,
  checkedAt: IsoTimeSchema,
  source: z.enum(['guest', 'model']),
  /** The accelerator the guest runs under (qemu driver). */
  accel: z.enum(['tcg', 'kvm']).optional(),
  /** The guest's CPUID sample number (qemu driver): a later check shows a later sample. */
  sample: z.number().int().min(0).optional(),
});
export type GuestCpuCheck = z.infer<typeof GuestCpuCheckSchema>;

export const CheckVmCpu = defineRequest({
  subject: 'agent.{hostId}.vm.cpu-check',
  description:
    "What a VM's guest sees of its CPU, compared with the baseline inventory recorded for it: the features missing, those visible outside it, " +
    'the documented exceptions. The qemu driver reads a CPUID sample the guest takes after the request (it must run); the sim driver answers from its model.',
  request: z
    .object({
      vmId: UuidSchema,
      /** The VM's baseline as inventory records it. */
      baseline: z.string().min(1).max(64),
      /** host-passthrough VMs: the features of the host it started on (what its guest must see). */
      expectedFeatures: FeatureListSchema.optional(),
    })
    .strict(),
  reply: GuestCpuCheckSchema,
});

/** What a resolution does with one host's copy of the VM: keep it (the VM) or fence it. */
export const FenceOutcomeSchema = z.enum(['keep', 'fence']);
export type FenceOutcome = z.infer<typeof FenceOutcomeSchema>;

export const FenceMigration = defineRequest({
  subject: 'agent.{hostId}.migration.fence',
  description:
    'An operator resolved a migration that ended failed-needs-attention (POST /api/v1/migrations/{id}/resolve). The agent records it in its ' +
    'persisted ledger first, so that no later (stale) step or compensation of that migration runs here, then acts on its copy of the VM: ' +
    '`fence` pauses a running copy (never destroys it) and destroys only an incoming copy that never received its state; `keep` resumes ' +
    'the copy if it is paused and `resume` is true. Idempotent. Only the scheduler may send it.',
  request: z.object({
    migrationId: UuidSchema,
    vmId: UuidSchema,
    role: RoleSchema,
    outcome: FenceOutcomeSchema,
    /** With `keep`: resume a paused copy (the scheduler asks it only when the other copy is known to be fenced). */
    resume: z.boolean().default(false),
    reason: z.string().min(1).max(500),
  }),
  reply: z.object({
    migrationId: UuidSchema,
    vmId: UuidSchema,
    /** The copy here before and after, as the agent's vm.list would report it (`absent`: no copy here). */
    before: z.enum(['running', 'paused', 'incoming', 'stopped', 'absent']),
    after: z.enum(['running', 'paused', 'incoming', 'stopped', 'absent']),
    action: z.enum(['paused', 'destroyed', 'resumed', 'none']),
    note: z.string(),
  }),
});
