import type { DataSource } from 'typeorm';
import { HostIdSchema, type Page, type PageQuery, type ReconciliationFinding, type ReconciliationKind, ReconciliationKindSchema, UuidSchema } from '@flexmig/contracts';
import { cursorNotOurs, decodeCursor, encodeCursor, prepared, runPrepared } from '@flexmig/persistence';

/**
 * The findings of the last reconciliation pass, a page at a time (issue 11: every list is paginated). The
 * order is the table's key (kind, VM, host), and a cursor is the key of the page's last finding: the next
 * page starts after it whether or not a later pass still has that finding (each pass replaces the set).
 */

/** Where a page of findings ends: its last finding's key. */
export interface FindingKey {
  kind: ReconciliationKind;
  vmId: string;
  hostId: string;
}

/** The opaque cursor of a finding's key (none of its three parts contains a `/`). */
export const findingCursor = (k: FindingKey): string => encodeCursor(`${k.kind}/${k.vmId}/${k.hostId}`);

/** The key a cursor names; VALIDATION_FAILED for a cursor this list did not give. */
export function findingKeyOf(cursor: string): FindingKey {
  const [kind, vmId, hostId, ...rest] = decodeCursor(cursor).split('/');
  const k = ReconciliationKindSchema.safeParse(kind);
  if (rest.length > 0 || !k.success || !UuidSchema.safeParse(vmId).success || !HostIdSchema.safeParse(hostId).success) throw cursorNotOurs(cursor);
  return { kind: k.data, vmId: vmId!, hostId: hostId! };
}

/** One page in key order, after `$2–$4` when given, of one kind when `$1` is given; one more than asked, to know whether a page follows. */
const FINDINGS_PAGE = prepared(
  'inventory_findings_page',
  `SELECT kind, vm_id, host_id, other_host_ids, agent_state, recorded_host_id, recorded_state, paused_host_ids, detail, first_seen_at, last_seen_at
   FROM reconciliation_findings
   WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR (kind, vm_id, host_id) > ($2::text, $3::uuid, $4::text))
   ORDER BY kind, vm_id, host_id LIMIT $5`,
);

interface Row {
  kind: ReconciliationKind;
  vm_id: string;
  host_id: string;
  other_host_ids: string[];
  agent_state: ReconciliationFinding['agentState'];
  recorded_host_id: string | null;
  recorded_state: string | null;
  paused_host_ids: string[];
  detail: string;
  first_seen_at: Date;
  last_seen_at: Date;
}

export async function findingsPage(db: DataSource, q: { kind?: ReconciliationKind } & PageQuery): Promise<Page<ReconciliationFinding>> {
  const after = q.cursor === undefined ? null : findingKeyOf(q.cursor);
  const rows = await runPrepared<Row>(db, FINDINGS_PAGE, [q.kind ?? null, after?.kind ?? null, after?.vmId ?? null, after?.hostId ?? null, q.limit + 1]);
  const items = rows.slice(0, q.limit).map(
    (r): ReconciliationFinding => ({
      kind: r.kind,
      vmId: r.vm_id,
      hostId: r.host_id,
      otherHostIds: r.other_host_ids,
      agentState: r.agent_state,
      recordedHostId: r.recorded_host_id,
      recordedState: r.recorded_state,
      pausedHostIds: r.paused_host_ids,
      detail: r.detail,
      firstSeenAt: r.first_seen_at.toISOString(),
      lastSeenAt: r.last_seen_at.toISOString(),
    }),
  );
  const last = items.at(-1);
  return { items, nextCursor: rows.length > q.limit && last ? findingCursor(last) : null };
}
