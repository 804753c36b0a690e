import { z } from 'zod';
import { defineMessage, subjectParams } from './define';
import { HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { StepNumberSchema } from './steps';

/** Frequent and lossy by design: core NATS, not JetStream. */
export const MigrationProgressSchema = z.object({
  migrationId: UuidSchema,
  vmId: UuidSchema,
  hostId: HostIdSchema,
  step: StepNumberSchema,
  pass: z.number().int().min(0),
  percent: z.number().min(0).max(100),
  totalBytes: z.number().min(0),
  transferredBytes: z.number().min(0),
  remainingBytes: z.number().min(0),
  dirtyRateBytesPerSec: z.number().min(0),
  bandwidthBytesPerSec: z.number().min(0),
  expectedDowntimeMs: z.number().min(0),
  throttlePct: z.number().min(0).max(100),
  at: IsoTimeSchema,
});
export type MigrationProgress = z.infer<typeof MigrationProgressSchema>;

export const MigrationProgressMessage = defineMessage({
  subject: 'progress.migration.{migrationId}.{hostId}',
  description:
    "Progress of a migration's memory transfer, at least once a second while it runs; the last token is the publishing agent's host (NATS permissions confine an agent to its own).",
  message: MigrationProgressSchema,
});

/**
 * Whether a progress sample names the migration and the host its subject names: NATS permissions vouch for
 * the subject (an agent publishes only under its own host), not for the body. A consumer drops a sample
 * that does not, so that no agent can speak for another host.
 */
export function progressMatchesSubject(subject: string, sample: Pick<MigrationProgress, 'migrationId' | 'hostId'>): boolean {
  const params = subjectParams(MigrationProgressMessage.subject, subject);
  return params?.migrationId === sample.migrationId && params.hostId === sample.hostId;
}
