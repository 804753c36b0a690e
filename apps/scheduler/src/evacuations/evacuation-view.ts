import { EvacuationItem, EvacuationState, EvacuationView, MigrationState, MigrationStateSchema, TERMINAL_MIGRATION_STATES } from '@flexmig/contracts';
import type { EvacuationEntity, EvacuationItemRecord } from './evacuation.entity';

/** What an evacuation needs to know of one of its migrations (read from the `migrations` table). */
export interface MigrationFacts {
  id: string;
  state: string;
  targetHostId: string;
  /** Why it did not complete, when it ended otherwise. */
  failure: { reason: string; code: string | null } | null;
}

/** The first cause recorded in a saga (JSONB), in words: the step that failed, or who cancelled and why. */
export function failureOf(saga: { cause?: unknown; attention?: unknown } | null | undefined): MigrationFacts['failure'] {
  const cause = saga?.cause as
    | { kind: 'step-failed'; step: number; name: string; reason: string; error?: { code?: string } }
    | { kind: 'cancelled'; reason: string; by: string }
    | null
    | undefined;
  const attention = saga?.attention as { step: number; error?: { code?: string; message?: string } } | null | undefined;
  if (cause?.kind === 'step-failed') return { reason: `step ${cause.step} (${cause.name}) failed: ${cause.reason}`, code: cause.error?.code ?? null };
  if (cause?.kind === 'cancelled') return { reason: `cancelled by ${cause.by}: ${cause.reason}`, code: null };
  if (attention) return { reason: `needs attention after step ${attention.step}: ${attention.error?.message ?? 'unknown error'}`, code: attention.error?.code ?? null };
  return null;
}

const terminal = new Set<string>(TERMINAL_MIGRATION_STATES);

export function itemView(record: EvacuationItemRecord, migration: MigrationFacts | undefined): EvacuationItem {
  const base = { vmId: record.vmId, name: record.name, migrationId: record.migrationId };
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
  if (terminal.has(migration.state)) {
    return { ...common, outcome: 'failed', reason: migration.failure?.reason ?? `its migration ended ${migration.state}`, code: migration.failure?.code ?? null };
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
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}
