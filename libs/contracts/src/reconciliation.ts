import { createHash } from 'node:crypto';
import { z } from 'zod';
import { HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { AgentVmStateSchema, type ReportedVm } from './inventory';

/**
 * Inventory reconciled with the agents (docs/reconciliation.md): what the agents report they hold
 * against what inventory records, and the three ways they disagree.
 */

export const ReconciliationKindSchema = z.enum(['orphaned', 'missing', 'split-brain']);
export type ReconciliationKind = z.infer<typeof ReconciliationKindSchema>;

export const ReconciliationFindingSchema = z.object({
  kind: ReconciliationKindSchema,
  vmId: UuidSchema,
  /** orphaned: the host that runs it; missing and split-brain: the host inventory records it on. */
  hostId: HostIdSchema,
  /** split-brain: the hosts holding the copies that are not inventory's record. */
  otherHostIds: z.array(HostIdSchema),
  /** What the agent(s) say of the copy or copies (orphaned, split-brain), null for missing. */
  agentState: AgentVmStateSchema.nullable(),
  /** Where inventory records the VM and in which state, or null when it has no record (orphaned). */
  recordedHostId: HostIdSchema.nullable(),
  recordedState: z.string().nullable(),
  /** split-brain: the hosts whose copy was paused by inventory (never destroyed). */
  pausedHostIds: z.array(HostIdSchema),
  detail: z.string(),
  firstSeenAt: IsoTimeSchema,
  lastSeenAt: IsoTimeSchema,
});
export type ReconciliationFinding = z.infer<typeof ReconciliationFindingSchema>;

/** At most this many of the hosts a pass could not judge are named in a report; all of them are counted. */
export const HOSTS_UNKNOWN_LISTED = 100;

/** The hosts a pass could not judge, as a report gives them: all counted, the first HOSTS_UNKNOWN_LISTED named, by id. */
export function unknownHostsOfPass(unknown: readonly string[]): { hostsUnknownCount: number; hostsUnknown: string[] } {
  return { hostsUnknownCount: unknown.length, hostsUnknown: [...unknown].sort().slice(0, HOSTS_UNKNOWN_LISTED) };
}

/**
 * GET /api/v1/reconciliation: the last pass's summary and one page of its findings, ordered by kind, VM
 * and host (`?kind=` keeps one kind; `limit`, `cursor` as every list: libs/contracts lists.ts).
 */
export const ReconciliationReportSchema = z.object({
  /** When the last pass ended (null before the first). */
  lastPassAt: IsoTimeSchema.nullable(),
  intervalMs: z.number().int().positive(),
  /** Hosts whose VM report was current in the last pass, and hosts that could not be judged (down, or no current report). */
  hostsChecked: z.number().int().min(0),
  hostsUnknownCount: z.number().int().min(0),
  /** The first of them by id, at most HOSTS_UNKNOWN_LISTED: the report does not grow with the fleet. */
  hostsUnknown: z.array(HostIdSchema).max(HOSTS_UNKNOWN_LISTED),
  items: z.array(ReconciliationFindingSchema),
  /** null on the last page; otherwise pass it as `cursor` for the next one. */
  nextCursor: z.string().nullable(),
});
export type ReconciliationReport = z.infer<typeof ReconciliationReportSchema>;

/**
 * A short digest of an agent's VM set, the same whatever the order: the heartbeat carries it so that
 * inventory learns the set changed without the set travelling every beat.
 */
export function vmDigest(vms: readonly ReportedVm[]): string {
  const lines = vms.map((v) => `${v.vmId}:${v.state}:${v.migrationId ?? ''}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}
