import {
  ErrorCode,
  EVACUATION_PLACEMENTS,
  EvacuationItem,
  EvacuationState,
  EvacuationView,
  isoTime,
  MigrationState,
  MigrationStateSchema,
  TERMINAL_MIGRATION_STATES,
} from '@flexmig/contracts';
import type { EvacuationEntity, EvacuationItemRecord } from './evacuation.entity';

/** What an evacuation needs to know of one of its migrations (read from the `migrations` table). */
export interface MigrationFacts {
  id: string;
  state: string;
  targetHostId: string;
  /** Why it did not complete, when it ended otherwise; `step`: the step that failed (null: cancelled). */
  failure: { reason: string; code: string | null; step: number | null } | null;
}

/** The first cause recorded in a saga (JSONB), in words: the step that failed, or who cancelled and why. */
export function failureOf(saga: { cause?: unknown; attention?: unknown } | null | undefined): MigrationFacts['failure'] {
  const cause = saga?.cause as
    | { kind: 'step-failed'; step: number; name: string; reason: string; error?: { code?: string } }
    | { kind: 'cancelled'; reason: string; by: string }
    | null
    | undefined;
  const attention = saga?.attention as { step: number; error?: { code?: string; message?: string } } | null | undefined;
  if (cause?.kind === 'step-failed') return { reason: `step ${cause.step} (${cause.name}) failed: ${cause.reason}`, code: cause.error?.code ?? null, step: cause.step };
  if (cause?.kind === 'cancelled') return { reason: `cancelled by ${cause.by}: ${cause.reason}`, code: null, step: null };
  if (attention) {
    return { reason: `needs attention after step ${attention.step}: ${attention.error?.message ?? 'unknown error'}`, code: attention.error?.code ?? null, step: attention.step };
  }
  return null;
}

const terminal = new Set<string>(TERMINAL_MIGRATION_STATES);

/**
 * Step 1's refusals that say the target placement chose can no longer take the VM (it went into maintenance
 * or down, ran out of room, or its CPU changed since placement's verdict), so another target may. Evacuating
 * several hosts at once is how it happens: an evacuation places its VMs on a read of the hosts, and a later
 * one puts one of those targets into maintenance before step 1 reserves it (docs/scale.md).
 */
export const REFUSED_TARGET_CODES: ReadonlySet<string> = new Set([ErrorCode.HostInMaintenance, ErrorCode.HostDown, ErrorCode.InsufficientCapacity, ErrorCode.CpuIncompatible]);

/** How many migrations the evacuation has asked for this VM so far. */
export const placementsOf = (record: EvacuationItemRecord): number => (record.earlierMigrationIds?.length ?? 0) + (record.migrationId ? 1 : 0);

/** Step 1 of this migration refused its target for a reason another target may not have (REFUSED_TARGET_CODES). */
const refusedTarget = (migration: MigrationFacts | undefined): migration is MigrationFacts & { failure: { code: string } } =>
  migration?.state === 'rolled-back' && migration.failure?.step === 1 && migration.failure.code !== null && REFUSED_TARGET_CODES.has(migration.failure.code);

/**
 * Why the VM is to be placed again, or null: its migration rolled back because step 1 refused the target
 * (REFUSED_TARGET_CODES), and fewer than EVACUATION_PLACEMENTS migrations were asked for it so far. Nova
 * does the same for a live migration whose destination fails its checks (`migrate_max_retries`).
 */
export function placeAgainBecause(record: EvacuationItemRecord, migration: MigrationFacts | undefined): string | null {
  if (!record.migrationId || !refusedTarget(migration) || placementsOf(record) >= EVACUATION_PLACEMENTS) return null;
  return `its migration to ${migration.targetHostId} was refused: ${migration.failure.reason}; placing the VM again (migration ${placementsOf(record) + 1} of at most ${EVACUATION_PLACEMENTS})`;
}

export function itemView(record: EvacuationItemRecord, migration: MigrationFacts | undefined): EvacuationItem {
  const base = { vmId: record.vmId, name: record.name, migrationId: record.migrationId, earlierMigrationIds: record.earlierMigrationIds ?? [] };
  if (!record.migrationId) {
    return { ...base, migrationState: null, targetHostId: null, outcome: 'not-moved', reason: record.reason, code: record.code };
  }
  if (!migration) {
    return { ...base, migrationState: null, targetHostId: null, outcome: 'failed', reason: `migration ${record.migrationId} is not on record`, code: null };
  }
  const parsed = MigrationStateSchema.safeParse(migration.state);
  const migrationState: MigrationState | null = parsed.success ? parsed.data : null;
  const common = { ...base, migrationState, targetHostId: migration.targetHostId };
  if (migration.state === 'completed') return { ...common, outcome: 'moved', reason: null, code: null };
  const again = placeAgainBecause(record, migration);
  if (again) return { ...common, outcome: 'moving', reason: again, code: migration.failure?.code ?? null };
  if (terminal.has(migration.state)) {
    const reason = migration.failure?.reason ?? `its migration ended ${migration.state}`;
    // every target placement chose refused it: say so, and what to do
    const exhausted = refusedTarget(migration) && placementsOf(record) > 1;
    return {
      ...common,
      outcome: 'failed',
      reason: exhausted ? `${reason} (step 1 refused each of the ${placementsOf(record)} targets placement chose: evacuate the host again once the cluster has room)` : reason,
      code: migration.failure?.code ?? null,
    };
  }
  return { ...common, outcome: 'moving', reason: null, code: null };
}

/**
 * `running` until every VM has been asked for and every migration has ended; then `completed` when all
 * moved (a host with no VMs included), else `completed-with-failures`.
 */
export function evacuationState(requestedAll: boolean, items: readonly EvacuationItem[]): EvacuationState {
  if (!requestedAll || items.some((i) => i.outcome === 'moving')) return 'running';
  return items.every((i) => i.outcome === 'moved') ? 'completed' : 'completed-with-failures';
}

export function evacuationView(row: EvacuationEntity, migrations: ReadonlyMap<string, MigrationFacts>): EvacuationView {
  const vms = row.items.map((r) => itemView(r, r.migrationId ? migrations.get(r.migrationId) : undefined));
  const count = (o: EvacuationItem['outcome']) => vms.filter((i) => i.outcome === o).length;
  return {
    id: row.id,
    hostId: row.hostId,
    state: evacuationState(row.requestedAt !== null, vms),
    requestedBy: row.requestedBy ?? null,
    counts: { total: vms.length, moving: count('moving'), moved: count('moved'), failed: count('failed'), notMoved: count('not-moved') },
    vms,
    createdAt: isoTime(row.createdAt),
    updatedAt: isoTime(row.updatedAt),
    finishedAt: row.finishedAt ? isoTime(row.finishedAt) : null,
  };
}
