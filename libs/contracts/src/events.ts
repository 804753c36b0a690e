import { z } from 'zod';
import { defineEvent } from './define';
import { HostCpuSchema, HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { StepNameSchema, StepNumberSchema } from './steps';
import { PredictedFiguresSchema } from './prediction';

/**
 * Events travel on JetStream under `<prefix>.events.<type>` in a CloudEvents 1.0 JSON envelope.
 * `id` is deterministic (e.g. `<migrationId>:completed`), and is also the JetStream message id, so a
 * repeated publish after a crash is de-duplicated by the server and by subscribers.
 */
export const CloudEventSchema = z.object({
  specversion: z.literal('1.0'),
  id: z.string().min(1),
  source: z.string().min(1),
  type: z.string().min(1),
  subject: z.string().optional(),
  time: IsoTimeSchema,
  datacontenttype: z.literal('application/json'),
  /** CloudEvents distributed-tracing extension: the W3C trace context of the migration (docs/observability.md). */
  traceparent: z.string().regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/).optional(),
  data: z.unknown(),
});
export type CloudEvent<T = unknown> = Omit<z.infer<typeof CloudEventSchema>, 'data'> & { data: T };

export const EVENTS_STREAM_SUFFIX = 'EVENTS';
export const eventsSubjectRoot = 'events';

const MigrationRef = { migrationId: UuidSchema, vmId: UuidSchema };

export const MigrationRequested = defineEvent({
  type: 'migration.requested',
  description: 'A migration was accepted.',
  // requestedBy: who asked (the bearer token's `sub`); absent in events from before tokens were required
  data: z.looseObject({ ...MigrationRef, sourceHostId: HostIdSchema, targetHostId: HostIdSchema, requestedBy: z.string().optional() }),
});
export const MigrationStepCompleted = defineEvent({
  type: 'migration.step-completed',
  description: 'One saga step completed.',
  data: z.looseObject({ ...MigrationRef, step: StepNumberSchema, stepName: StepNameSchema, durationMs: z.number().min(0) }),
});
export const MigrationCompleted = defineEvent({
  type: 'migration.completed',
  description: 'The VM runs on the target host and inventory says so.',
  data: z.looseObject({
    ...MigrationRef,
    sourceHostId: HostIdSchema,
    targetHostId: HostIdSchema,
    totalTimeMs: z.number().min(0),
    downtimeMs: z.number().min(0),
    /** The hypervisor's own downtime figure (QEMU's), when the driver reports one; absent otherwise. */
    hypervisorDowntimeMs: z.number().min(0).optional(),
    bytesTransferred: z.number().min(0),
    passes: z.number().int().min(0),
    /** What was predicted before the start, beside the actual figures above; absent in events from before predictions and when none was made. */
    predicted: PredictedFiguresSchema.optional(),
  }),
});
export const MigrationFailed = defineEvent({
  type: 'migration.failed',
  description: 'A migration failed: which step, the error code and the reason (and, when a human must look, why).',
  data: z.looseObject({ ...MigrationRef, step: z.number().int().min(0).max(9), stepName: z.string(), code: z.string(), reason: z.string() }),
});
export const MigrationRolledBack = defineEvent({
  type: 'migration.rolled-back',
  description: 'A failed migration was compensated: the VM runs on the source as before.',
  data: z.looseObject({ ...MigrationRef, step: StepNumberSchema, reason: z.string(), hostId: HostIdSchema }),
});
export const MigrationCancelled = defineEvent({
  type: 'migration.cancelled',
  description: 'A migration was cancelled before the point of no return and compensated.',
  data: z.looseObject({ ...MigrationRef, reason: z.string(), by: z.string() }),
});
/** One agent's answer to "where does the VM run", as a resolution recorded it. */
export const ResolutionAgentAnswerSchema = z.object({
  hostId: HostIdSchema,
  role: z.enum(['source', 'target']),
  /** False: the agent could not be asked within the deadline (`error` says why). */
  answered: z.boolean(),
  /** The VM's copy on that host (`absent`: none), when it answered. */
  copy: z.enum(['running', 'paused', 'incoming', 'stopped', 'absent']).nullable(),
  error: z.string().nullable(),
});
export const MigrationResolved = defineEvent({
  type: 'migration.resolved',
  description:
    'An operator closed a migration that ended failed-needs-attention: where the VM runs (as the agents said, or as the operator stated), ' +
    'what became of the other copy, and who did it. The migration keeps its state; inventory records the VM on `hostId`.',
  data: z.looseObject({
    ...MigrationRef,
    runsOn: z.enum(['source', 'target']),
    hostId: HostIdSchema,
    decidedBy: z.enum(['agents', 'operator']),
    by: z.string().min(1),
    reason: z.string(),
    agents: z.array(ResolutionAgentAnswerSchema),
    fence: z.object({ hostId: HostIdSchema, delivered: z.boolean(), action: z.string(), note: z.string() }),
  }),
});
export const HostRegistered = defineEvent({
  type: 'host.registered',
  description: 'A host registered (or re-registered) with inventory.',
  data: z.object({ hostId: HostIdSchema, clusterId: UuidSchema, maxImcMode: z.string().nullable(), cpu: HostCpuSchema }),
});
export const HostDown = defineEvent({
  type: 'host.down',
  description: 'A host stopped heartbeating.',
  data: z.object({ hostId: HostIdSchema, lastHeartbeatAt: IsoTimeSchema }),
});
export const HostUp = defineEvent({
  type: 'host.up',
  description: 'A host that was down heartbeats again.',
  data: z.object({ hostId: HostIdSchema }),
});
export const ClusterImcModeChanged = defineEvent({
  type: 'cluster.imc-mode-changed',
  description: "A cluster's CPU baseline (IMC mode) changed.",
  data: z.object({ clusterId: UuidSchema, oldMode: z.string().nullable(), newMode: z.string().nullable(), by: z.string() }),
});
export const VmStarted = defineEvent({
  type: 'vm.started',
  description: 'A VM was started on a host.',
  data: z.object({ vmId: UuidSchema, hostId: HostIdSchema, cpuBaseline: z.string() }),
});

const ReconciledVm = { vmId: UuidSchema, hostId: HostIdSchema, detectedAt: IsoTimeSchema };
export const VmOrphaned = defineEvent({
  type: 'vm.orphaned',
  description: "An agent runs a VM where inventory has no record of it (no VM of that id, or recorded on another host with no migration in flight). Its capacity is not counted.",
  data: z.object({ ...ReconciledVm, agentState: z.string(), recordedHostId: HostIdSchema.nullable() }),
});
export const VmMissing = defineEvent({
  type: 'vm.missing',
  description: 'Inventory records a running VM on a host whose agent does not run it (and no other agent does).',
  data: z.object({ ...ReconciledVm, recordedState: z.string() }),
});
export const VmSplitBrain = defineEvent({
  type: 'vm.split-brain',
  description:
    "A VM runs on two hosts or more with no migration in flight. The copies that are not inventory's record were asked to pause (never destroyed); `paused` says which did.",
  data: z.object({ ...ReconciledVm, otherHostIds: z.array(HostIdSchema).min(1), paused: z.array(HostIdSchema), pauseErrors: z.array(z.string()) }),
});
