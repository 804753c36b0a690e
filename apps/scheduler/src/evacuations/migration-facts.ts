import type { DataSource, EntityManager } from 'typeorm';
import { failureOf, MigrationFacts } from './evacuation-view';

/** What an evacuation needs of its migrations, read only from the scheduler's own `migrations` table (in `db`'s transaction, when it is one). */
export async function readMigrationFacts(db: DataSource | EntityManager, ids: readonly (string | null)[]): Promise<Map<string, MigrationFacts>> {
  const wanted = [...new Set(ids.filter((i): i is string => i !== null))];
  if (wanted.length === 0) return new Map();
  const rows: { id: string; state: string; target_host_id: string; cause: unknown; attention: unknown }[] = await db.query(
    `SELECT id, state, target_host_id, saga->'cause' AS cause, saga->'attention' AS attention FROM migrations WHERE id = ANY($1::uuid[])`,
    [wanted],
  );
  return new Map(rows.map((r) => [r.id, { id: r.id, state: r.state, targetHostId: r.target_host_id, failure: failureOf({ cause: r.cause, attention: r.attention }) }]));
}
