import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { hostCapacity, type PageQuery, type PlacementHost, VendorSchema } from '@flexmig/contracts';
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
    const featureSets = Object.fromEntries(featureSetsOf(pageRows));
    const hosts = pageRows.map((r): PlacementHost => {
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
    });
    return { hosts, featureSets, nextCursor: more ? encodeCursor(pageRows.at(-1)!.id) : null };
  }
}
