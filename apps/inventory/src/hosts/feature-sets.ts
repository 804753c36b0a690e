/**
 * A host's CPU feature list is one of a few in a fleet (hosts of one model report the same list), and it is
 * most of a host's row: about 1 KB of the 1.1 KB a host takes in a list. A statement that reads many hosts
 * names each row's list by its digest and carries the list itself once, on the first row (by id) that has
 * it: PostgreSQL sends, and the pg driver parses, a few lists instead of one per host. The digest is the
 * column `hosts.cpu_feature_set` (migration 1764500000000-list-pages), kept by PostgreSQL (a trigger since
 * 1764700000000-host-liveness-in-place).
 */

/**
 * The feature list of `alias`'s host on the first row (by id) of each `feature_set` among the rows of the
 * CTE `cte`, NULL on the others: `column` goes in the select list, `join` after `FROM cte alias`. The rows
 * that carry a list are found by grouping the CTE's digests (a hash aggregate), and the list is read by a
 * lookup on those rows only (CASE runs it for the rows it picks). A window (`row_number()` by digest) sorted
 * the page's rows once more for it: a page of 1,000 hosts took 7.8 ms p50 with it and 6.4 ms without,
 * read by the pg driver (docs/scale.md). A statement whose rows all carry the list (a CTE of 1,000 hosts
 * with their lists) spends about 5 ms of PostgreSQL's time moving 1 MB it then drops.
 */
export const featureListOncePerSetSql = (cte: string, alias: string): { column: string; join: string } => ({
  column: `CASE WHEN first_of_set.id IS NOT NULL THEN (SELECT f.cpu_features FROM hosts f WHERE f.id = ${alias}.id) END`,
  join: `LEFT JOIN (SELECT min(id) AS id FROM ${cte} GROUP BY feature_set) first_of_set ON first_of_set.id = ${alias}.id`,
});

/** Each feature list of `rows`, under its digest (from the rows that carry it). */
export function featureSetsOf(rows: readonly { feature_set: string; cpu_features: string[] | null }[]): Map<string, string[]> {
  const sets = new Map<string, string[]>();
  for (const r of rows) if (r.cpu_features) sets.set(r.feature_set, r.cpu_features);
  return sets;
}
