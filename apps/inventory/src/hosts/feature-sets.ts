/**
 * A host's CPU feature list is one of a few in a fleet (hosts of one model report the same list), and it is
 * most of a host's row: about 1 KB of the 1.1 KB a host takes in a list. A statement that reads many hosts
 * names each row's list by its digest and carries the list itself once, on the first row (by id) that has
 * it: PostgreSQL sends, and the pg driver parses, a few lists instead of one per host. The digest is the
 * column `hosts.cpu_feature_set` (migration 1764500000000-list-pages), kept by PostgreSQL (a trigger since
 * 1764700000000-host-liveness-in-place).
 */

/**
 * The feature list of `alias`'s host on the first row (by id) of each `alias.feature_set` in the statement's
 * rows, NULL on the others. Read by a lookup on that row only (CASE runs it for the rows it picks): a
 * statement whose rows all carry the list first (a CTE of 1,000 hosts with their lists) spends about 5 ms
 * of PostgreSQL's time moving 1 MB it then drops.
 */
export const firstOfFeatureSetSql = (alias: string): string =>
  `CASE WHEN row_number() OVER (PARTITION BY ${alias}.feature_set ORDER BY ${alias}.id) = 1 THEN (SELECT f.cpu_features FROM hosts f WHERE f.id = ${alias}.id) END`;

/** Each feature list of `rows`, under its digest (from the rows that carry it). */
export function featureSetsOf(rows: readonly { feature_set: string; cpu_features: string[] | null }[]): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const r of rows) if (r.cpu_features) sets.set(r.feature_set, r.cpu_features);
  return sets;
}
