import { z } from 'zod';
import { defineRequest } from './define';
import { HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { MigrationPolicyInputSchema, MigrationPolicySchema } from './policy';
import { StepNameSchema, StepNumberSchema } from './steps';
import { ResolutionAgentAnswerSchema } from './events';
import { MigrationPredictionSchema, PredictedFiguresSchema } from './prediction';

export const CreateMigrationSchema = z
  .object({
    vmId: UuidSchema,
    /** Omit to let the scheduler choose (placement): same cluster, up, not in maintenance, CPU compatible, room, least loaded. */
    targetHostId: HostIdSchema.optional(),
    policy: MigrationPolicyInputSchema.strict().optional(),
  })
  .strict();
export type CreateMigration = z.infer<typeof CreateMigrationSchema>;
/** POST /api/v1/migrations/predict: the body of POST /api/v1/migrations (docs/prediction.md). */
export const PredictMigrationSchema = CreateMigrationSchema;
export type PredictMigration = CreateMigration;

export const MigrationStateSchema = z.enum([
  /** Waiting in the admission queue for a free slot (limits per host and per cluster). */
  'queued',
  'created',
  'running',
  'compensating',
  'completed',
  'rolled-back',
  'cancelled',
  'failed-needs-attention',
]);
export type MigrationState = z.infer<typeof MigrationStateSchema>;
export const TERMINAL_MIGRATION_STATES: readonly MigrationState[] = ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'];

export const StepStatusSchema = z.enum([
  'pending',
  'running',
  'completed',
  'failed',
  'compensating',
  'compensated',
  'compensation-failed',
  'skipped',
]);

const StepErrorSchema = z.object({ code: z.string(), message: z.string(), retryable: z.boolean() });

export const MigrationStepViewSchema = z.object({
  number: StepNumberSchema,
  name: StepNameSchema,
  actor: z.enum(['scheduler', 'source', 'target', 'source+target']),
  status: StepStatusSchema,
  attempt: z.number().int().min(0),
  startedAt: IsoTimeSchema.nullable(),
  endedAt: IsoTimeSchema.nullable(),
  durationMs: z.number().nullable(),
  error: StepErrorSchema.nullable(),
  compensation: z
    .object({ name: z.string(), attempt: z.number(), startedAt: IsoTimeSchema, endedAt: IsoTimeSchema.nullable(), error: StepErrorSchema.nullable() })
    .nullable(),
});

export const MigrationResultSchema = z.object({
  totalTimeMs: z.number(),
  /** As the guest saw it: source paused (step 5) to target resumed (step 7). */
  downtimeMs: z.number(),
  /**
   * The hypervisor's own downtime figure (QEMU's `downtime` of the stream, step 6), when the driver reports
   * one: `downtimeMs` minus this is what flexmig's path between the pause and the resume cost the guest.
   */
  hypervisorDowntimeMs: z.number().min(0).optional(),
  bytesTransferred: z.number(),
  passes: z.number().int(),
  /** What was predicted before the start (POST /api/v1/migrations recorded it), beside the actual figures; absent: no prediction. */
  predicted: PredictedFiguresSchema.optional(),
});
export type MigrationResult = z.infer<typeof MigrationResultSchema>;

/** POST /api/v1/migrations/{id}/resolve: where the VM runs, when the agents cannot tell (and why the operator says so). */
export const ResolveMigrationSchema = z
  .object({
    /** Required only when the agents cannot tell (both run it, neither does, or one cannot be asked); refused when it contradicts them. */
    runsOn: z.enum(['source', 'target']).optional(),
    reason: z.string().min(1).max(500).optional(),
  })
  .strict();
export type ResolveMigration = z.infer<typeof ResolveMigrationSchema>;

export const MigrationResolutionSchema = z.object({
  runsOn: z.enum(['source', 'target']),
  hostId: HostIdSchema,
  /** `agents`: both agents answered and exactly one runs the VM; `operator`: the operator's `runsOn` decided. */
  decidedBy: z.enum(['agents', 'operator']),
  /** The `sub` of the operator's bearer token. */
  by: z.string(),
  at: IsoTimeSchema,
  reason: z.string(),
  agents: z.array(ResolutionAgentAnswerSchema),
  /** The other host's copy: `delivered` false when its agent could not be reached (the copy, if any, is not fenced). */
  fence: z.object({ hostId: HostIdSchema, delivered: z.boolean(), action: z.string(), note: z.string() }),
  /** What became of the kept copy (resumed when it was paused and the other copy is fenced). */
  kept: z.object({ hostId: HostIdSchema, action: z.string(), note: z.string() }),
});
export type MigrationResolution = z.infer<typeof MigrationResolutionSchema>;

/**
 * The rules placement passes a host over by, in the order it checks them (docs/migrations.md, Placement);
 * `less-suitable`: eligible, but ranked after the chosen host (more loaded, or behind it on a tie).
 */
export const PLACEMENT_RULES = ['other-cluster', 'source', 'down', 'maintenance', 'memory', 'vcpus', 'cpu', 'less-suitable'] as const;
export const PlacementRuleSchema = z.enum(PLACEMENT_RULES);
export type PlacementRule = z.infer<typeof PlacementRuleSchema>;

/** How many of the hosts passed over a placement names one by one (the rest are counted by rule): a placement costs the same at 20 hosts and 1,000. */
export const PASSED_OVER_LISTED = 25;

/** Why the scheduler chose a migration's target, and why it passed the other hosts over. */
export const MigrationPlacementSchema = z.object({
  chosen: HostIdSchema,
  reason: z.string(),
  /**
   * Hosts passed over, each with why: at most PASSED_OVER_LISTED (25), the eligible ones ranked closest
   * after the chosen host first, then those a rule ruled out, by host id. All of them when no more were.
   */
  passedOver: z.array(z.object({ hostId: HostIdSchema, reason: z.string() })).max(PASSED_OVER_LISTED),
  /** How many hosts were passed over in all: more than `passedOver` names when the list was cut. */
  passedOverCount: z.number().int().min(0),
  /** How many hosts each rule passed over (rules that passed none are left out); null for a migration placed before they were counted. */
  passedOverByRule: z.object(Object.fromEntries(PLACEMENT_RULES.map((r) => [r, z.number().int().min(1).optional()])) as Record<PlacementRule, z.ZodOptional<z.ZodNumber>>).strict().nullable(),
});
export type MigrationPlacement = z.infer<typeof MigrationPlacementSchema>;

export const MigrationViewSchema = z.object({
  id: UuidSchema,
  vmId: UuidSchema,
  sourceHostId: HostIdSchema,
  targetHostId: HostIdSchema,
  state: MigrationStateSchema,
  /** Who asked for it: the `sub` of the bearer token (null for migrations from before tokens were required). */
  requestedBy: z.string().nullable(),
  /** While queued: 1 = next to start. */
  queuePosition: z.number().int().min(1).nullable(),
  /** Why this target, and why the other hosts were passed over (when the scheduler chose it). */
  placement: MigrationPlacementSchema.nullable(),
  policy: MigrationPolicySchema,
  createdAt: IsoTimeSchema,
  updatedAt: IsoTimeSchema,
  finishedAt: IsoTimeSchema.nullable(),
  currentStep: z.object({ number: StepNumberSchema, name: StepNameSchema, status: StepStatusSchema }).nullable(),
  cancellable: z.boolean(),
  steps: z.array(MigrationStepViewSchema),
  result: MigrationResultSchema.nullable(),
  failure: z.object({ step: z.number(), stepName: z.string(), code: z.string(), message: z.string() }).nullable(),
  /**
   * Why a `failed-needs-attention` migration needs a human: `resume-target-failed`, `compensation-failed`,
   * `finish-failed` (steps 8–9 could not finish; the VM runs on the target) or `outcome-unknown` (an agent
   * could not be asked what it did for longer than the scheduler's limit).
   */
  attention: z.object({ kind: z.string(), step: z.number(), stepName: z.string(), message: z.string() }).nullable(),
  /** The latest progress sample of the memory transfer, while one runs. */
  progress: z.record(z.string(), z.unknown()).nullable(),
  /**
   * How an operator closed a `failed-needs-attention` migration (POST …/resolve); null until then. The
   * migration keeps its state: the saga's record of what happened stays true, and this says what was done about it.
   */
  resolution: MigrationResolutionSchema.nullable(),
  /** The prediction made when it was requested (docs/prediction.md); null when none could be made (the answer's `predictionError` said why). */
  prediction: MigrationPredictionSchema.nullable().optional(),
  /** Why no prediction was made, when none was (the migration goes ahead without one). */
  predictionError: z.string().nullable().optional(),
});
export type MigrationView = z.infer<typeof MigrationViewSchema>;

export const CancelMigrationSchema = z.object({ reason: z.string().max(500).optional() }).strict();

// ---- NATS: agent → scheduler ----

export const GetStepAttempt = defineRequest({
  subject: 'scheduler.migration.step-attempt',
  description:
    'The attempt of a step the scheduler has issued (0: never; null migration: unknown to the scheduler). An agent asks before it fences ' +
    'an attempt it has not seen (agent.{hostId}.migration.query), so that nobody can fence attempts the scheduler never issued.',
  request: z.object({ migrationId: UuidSchema, step: StepNumberSchema }),
  reply: z.object({ migrationId: UuidSchema, step: StepNumberSchema, known: z.boolean(), attempt: z.number().int().min(0) }),
});
