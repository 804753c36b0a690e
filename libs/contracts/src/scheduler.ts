import { z } from 'zod';
import { HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { MigrationPolicyInputSchema, MigrationPolicySchema } from './policy';
import { StepNameSchema, StepNumberSchema } from './steps';

export const CreateMigrationSchema = z
  .object({
    vmId: UuidSchema,
    targetHostId: HostIdSchema,
    policy: MigrationPolicyInputSchema.strict().optional(),
  })
  .strict();
export type CreateMigration = z.infer<typeof CreateMigrationSchema>;

export const MigrationStateSchema = z.enum([
  'running',
  'compensating',
  'completed',
  'rolled-back',
  'cancelled',
  'failed-needs-attention',
]);
export type MigrationState = z.infer<typeof MigrationStateSchema>;

export const StepStatusSchema = z.enum(['pending', 'running', 'completed', 'failed', 'compensating', 'compensated', 'skipped']);

export const MigrationStepViewSchema = z.object({
  number: StepNumberSchema,
  name: StepNameSchema,
  status: StepStatusSchema,
  attempt: z.number().int().min(0),
  startedAt: IsoTimeSchema.nullable(),
  endedAt: IsoTimeSchema.nullable(),
  durationMs: z.number().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});

export const MigrationResultSchema = z.object({
  totalTimeMs: z.number(),
  downtimeMs: z.number(),
  bytesTransferred: z.number(),
  passes: z.number().int(),
});
export type MigrationResult = z.infer<typeof MigrationResultSchema>;

export const MigrationViewSchema = z.object({
  id: UuidSchema,
  vmId: UuidSchema,
  sourceHostId: HostIdSchema,
  targetHostId: HostIdSchema,
  state: MigrationStateSchema,
  policy: MigrationPolicySchema,
  createdAt: IsoTimeSchema,
  updatedAt: IsoTimeSchema,
  finishedAt: IsoTimeSchema.nullable(),
  steps: z.array(MigrationStepViewSchema),
  result: MigrationResultSchema.nullable(),
  failure: z.object({ step: StepNumberSchema, code: z.string(), message: z.string() }).nullable(),
});
export type MigrationView = z.infer<typeof MigrationViewSchema>;
