import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { hostCapacity, type PageQuery, PLACEMENT_RULES_IN_INVENTORY, type PlacementFor, type PlacementHost, type PlacementUnlisted, VendorSchema } from '@flexmig/contracts';
import { decodeCursor, encodeCursor, prepared, runPrepared } from '@flexmig/persistence';
import { ratiosOf } from '../views';
import { featureListOncePerSetSql, featureSetsOf } from './feature-sets';

interface Row {
  id: string;
  cluster_id: string;
  memory_mib: number;
  vcpus: number;
  driver: PlacementHost['driver'];
  state: PlacementHost['state'];
  maintenance: boolean;
  cpu_vendor: string;
  feature_set: string;
  /** Only on the first host of its feature set in the page (by id); null on the others. */
  cpu_features: string[] | null;
  held_memory: number;
  held_vcpus: number;
  cpu_allocation_ratio: number;
  memory_allocation_ratio: number;
}

const featureList = featureListOncePerSetSql('page', 'p');
/** A page of a cluster's hosts for placement (prepared: every migration request without a target asks it). */
const PLACEMENT_PAGE = prepared(
  'inventory_placement_page',
  `WITH page AS (
     SELECT id, cluster_id, memory_mib, vcpus, driver, state, maintenance, cpu_vendor, cpu_feature_set AS feature_set
     FROM hosts WHERE cluster_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3)
   SELECT p.id, p.cluster_id, p.memory_mib, p.vcpus, p.driver, p.state, p.maintenance, p.cpu_vendor, p.feature_set,
     ${featureList.column} AS cpu_features,
     coalesce(held.memory_mib, 0) AS held_memory, coalesce(held.vcpus, 0) AS held_vcpus,
     c.cpu_allocation_ratio, c.memory_allocation_ratio
   FROM page p JOIN clusters c ON c.id = p.cluster_id LEFT JOIN host_allocations held ON held.host_id = p.id
     ${featureList.join}
   ORDER BY p.id`,
);

/**
 * One VM's placement (`for`): the cluster's hosts judged by the rules inventory can check, in the scheduler's
 * order ($2, $3: the VM's memory and vCPUs; $4: its source), capacities as `hostCapacity` computes them
 * (IEEE doubles both; `k`: the host's capacity and what it holds). Listed: every host of $5 (the scheduler's inbound targets); of each CPU, the $6
 * passing ones of lowest memory utilisation after placement, then id, and its first $7 passing ones by id;
 * the first $7 failing a rule by id (the hosts a placement names). Ids in byte order (`COLLATE "C"`), as the
 * scheduler orders them (JavaScript's `<` on ASCII ids), not the database's collation, which ignores case
 * and punctuation at first and compares several times slower. Each list is a bounded top-N over the judged
 * hosts (no sort of the whole cluster), and the listed hosts' columns are read by key afterwards, in the
 * same statement and snapshot. Then one row per group of the others
 * (the first rule failed, or the CPU of those passing), `id` null, with their count. The feature list rides
 * on the first listed host of each set, as in a page.
 */
const PLACEMENT_CANDIDATES = prepared(
  'inventory_placement_candidates',
  `WITH judged AS MATERIALIZED (
     SELECT h.id, h.cpu_vendor, h.cpu_feature_set AS feature_set, h.id = ANY($5::text[]) AS included,
       CASE WHEN h.id = $4 THEN 'source' WHEN h.state <> 'up' THEN 'down' WHEN h.maintenance THEN 'maintenance'
         WHEN k.memory - k.held_memory < $2 THEN 'memory' WHEN k.vcpus - k.held_vcpus < $3 THEN 'vcpus' END AS rule,
       (k.held_memory + $2)::float8 / NULLIF(k.memory, 0) AS used_after
     FROM hosts h JOIN clusters c ON c.id = h.cluster_id LEFT JOIN host_allocations held ON held.host_id = h.id,
       LATERAL (SELECT floor(h.memory_mib * c.memory_allocation_ratio + 1e-9) AS memory, floor(h.vcpus * c.cpu_allocation_ratio + 1e-9) AS vcpus,
         coalesce(held.memory_mib, 0) AS held_memory, coalesce(held.vcpus, 0) AS held_vcpus) k
     WHERE h.cluster_id = $1),
   cpus AS (SELECT DISTINCT cpu_vendor, feature_set FROM judged WHERE rule IS NULL AND NOT included),
   listed AS (
     SELECT id FROM judged WHERE included
     UNION SELECT id FROM (SELECT id FROM judged WHERE rule IS NOT NULL AND NOT included ORDER BY id COLLATE "C" LIMIT $7) failing
     UNION SELECT best.id FROM cpus, LATERAL (
       SELECT id FROM judged j WHERE j.cpu_vendor = cpus.cpu_vendor AND j.feature_set = cpus.feature_set AND j.rule IS NULL AND NOT j.included
       ORDER BY j.used_after, j.id COLLATE "C" LIMIT $6) best
     UNION SELECT first.id FROM cpus, LATERAL (
       SELECT id FROM judged j WHERE j.cpu_vendor = cpus.cpu_vendor AND j.feature_set = cpus.feature_set AND j.rule IS NULL AND NOT j.included
       ORDER BY j.id COLLATE "C" LIMIT $7) first),
   page AS (
     SELECT h.id, h.cluster_id, h.memory_mib, h.vcpus, h.driver, h.state, h.maintenance, h.cpu_vendor, h.cpu_feature_set AS feature_set,
       coalesce(held.memory_mib, 0) AS held_memory, coalesce(held.vcpus, 0) AS held_vcpus, c.cpu_allocation_ratio, c.memory_allocation_ratio
     FROM listed l JOIN hosts h ON h.id = l.id JOIN clusters c ON c.id = h.cluster_id LEFT JOIN host_allocations held ON held.host_id = h.id)
   SELECT p.id, p.cluster_id, p.memory_mib, p.vcpus, p.driver, p.state, p.maintenance, p.cpu_vendor, p.feature_set,
     ${featureList.column} AS cpu_features, p.held_memory, p.held_vcpus, p.cpu_allocation_ratio, p.memory_allocation_ratio,
     NULL::text AS rule, 0 AS unlisted
   FROM page p ${featureList.join}
   UNION ALL
   SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, j.cpu_vendor, j.feature_set, NULL, NULL, NULL, NULL, NULL, j.rule, count(*)::int
   FROM judged j WHERE NOT EXISTS (SELECT 1 FROM listed l WHERE l.id = j.id) GROUP BY j.rule, j.cpu_vendor, j.feature_set`,
);

/** A row of PLACEMENT_CANDIDATES: a listed host (`id` set), or a group of unlisted ones (`id` null, their `rule` and count). */
type CandidateRow = (Row | { [K in keyof Row]: K extends 'cpu_vendor' | 'feature_set' ? Row[K] : null }) & {
  rule: (typeof PLACEMENT_RULES_IN_INVENTORY)[number] | null;
  unlisted: number;
};

/**
 * `inventory.host.placement-list`: a page of a cluster's hosts as placement weighs them, in one statement
 * (one snapshot): the hosts, what each holds (`host_allocations`, capacity.ts), its cluster's ratios, and each
 * distinct CPU feature list once, on the first host that has it (issue 11: placement read the whole
 * `inventory.host.list`, 1,000 hosts with their feature lists in five requests of 200, for every
 * migration request without a target). Ordered by id: the cursor is the last id of the page before.
 */
@Injectable()
export class PlacementHosts {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  async page(q: { clusterId: string } & PageQuery): Promise<{ hosts: PlacementHost[]; featureSets: Record<string, string[]>; nextCursor: string | null }> {
    const after = q.cursor ? decodeCursor(q.cursor) : null;
    const rows = await runPrepared<Row>(this.db, PLACEMENT_PAGE, [q.clusterId, after, q.limit + 1]);
    const more = rows.length > q.limit;
    const pageRows = more ? rows.slice(0, q.limit) : rows;
    return { hosts: pageRows.map(placementHostOf), featureSets: Object.fromEntries(featureSetsOf(pageRows)), nextCursor: more ? encodeCursor(pageRows.at(-1)!.id) : null };
  }

  /**
   * One VM's placement (`for`, contracts PlacementForSchema): the hosts worth weighing and the count of the
   * others, in one statement. null when the answer would hold more than `maxHosts` hosts (a cluster of many
   * CPUs): the caller then reads every page.
   */
  async candidates(clusterId: string, f: PlacementFor, maxHosts: number): Promise<{ hosts: PlacementHost[]; featureSets: Record<string, string[]>; unlisted: PlacementUnlisted } | null> {
    const rows = await runPrepared<CandidateRow>(this.db, PLACEMENT_CANDIDATES, [clusterId, f.memoryMiB, f.vcpus, f.sourceHostId, f.include, f.perCpu, f.named]);
    const listed = rows.filter((r): r is CandidateRow & { id: string } => r.id !== null);
    if (listed.length > maxHosts) return null;
    const unlisted: PlacementUnlisted = { byRule: Object.fromEntries(PLACEMENT_RULES_IN_INVENTORY.map((r) => [r, 0])) as PlacementUnlisted['byRule'], passing: [] };
    for (const r of rows) {
      if (r.id !== null) continue;
      if (r.rule) unlisted.byRule[r.rule] += r.unlisted;
      else unlisted.passing.push({ vendor: VendorSchema.parse(r.cpu_vendor), featureSet: r.feature_set, count: r.unlisted });
    }
    return { hosts: listed.map(placementHostOf), featureSets: Object.fromEntries(featureSetsOf(listed)), unlisted };
  }
}

function placementHostOf(r: Row): PlacementHost {
  const ratios = ratiosOf({ cpuAllocationRatio: r.cpu_allocation_ratio, memoryAllocationRatio: r.memory_allocation_ratio });
  const capacity = hostCapacity({ memoryMiB: r.memory_mib, vcpus: r.vcpus }, ratios);
  return {
    id: r.id,
    clusterId: r.cluster_id,
    memoryMiB: r.memory_mib,
    vcpus: r.vcpus,
    allocatedMemoryMiB: r.held_memory,
    allocatedVcpus: r.held_vcpus,
    ...ratios,
    capacityMemoryMiB: capacity.memoryMiB,
    capacityVcpus: capacity.vcpus,
    driver: r.driver,
    state: r.state,
    maintenance: r.maintenance,
    cpu: { vendor: VendorSchema.parse(r.cpu_vendor), featureSet: r.feature_set },
  };
}
