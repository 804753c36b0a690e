import { EntityManager, In } from 'typeorm';
import { type AllocationRatios, DEFAULT_ALLOCATION_RATIOS } from '@flexmig/contracts';
import { ClusterEntity } from './entities';
import { ratiosOf } from './views';

export interface Allocation {
  memoryMiB: number;
  vcpus: number;
}

/**
 * The one definition of what a host holds: its VMs that are starting or running, and the reservations of
 * migrations coming to it. A query of `host_id, memory_mib, vcpus` per host; `hostFilter` (e.g. `host_id =
 * ANY($1)`) goes inside both halves, so a lookup of a few hosts uses the host_id indexes instead of
 * summing every VM and reservation of the inventory. `allocations` runs it alone; the placement list
 * (hosts/placement-hosts.ts) inside its own statement.
 */
export const heldByHostSql = (hostFilter = 'true'): string =>
  `SELECT host_id, sum(memory_mib)::int AS memory_mib, sum(vcpus)::int AS vcpus FROM (
     SELECT host_id, memory_mib, vcpus FROM vms WHERE state IN ('starting', 'running') AND ${hostFilter}
     UNION ALL SELECT host_id, memory_mib, vcpus FROM reservations WHERE ${hostFilter}) held
   GROUP BY host_id`;

/** What VMs (starting or running) and incoming-migration reservations hold on each host (all, or those named). */
export async function allocations(m: EntityManager, hostIds?: string[]): Promise<Map<string, Allocation>> {
  const rows: { host_id: string; memory_mib: number; vcpus: number }[] = await m.query(heldByHostSql(hostIds ? 'host_id = ANY($1)' : undefined), hostIds ? [hostIds] : []);
  return new Map(rows.map((r) => [r.host_id, { memoryMiB: r.memory_mib, vcpus: r.vcpus }]));
}

export const none: Allocation = { memoryMiB: 0, vcpus: 0 };

/** The allocation ratios of the clusters named (all without ids), by cluster id. */
export async function clusterRatios(m: EntityManager, clusterIds?: string[]): Promise<Map<string, AllocationRatios>> {
  const rows = await m.getRepository(ClusterEntity).find({
    where: clusterIds ? { id: In([...new Set(clusterIds)]) } : {},
    select: { id: true, cpuAllocationRatio: true, memoryAllocationRatio: true },
  });
  return new Map(rows.map((c) => [c.id, ratiosOf(c)]));
}

/** A cluster's ratios from `clusterRatios`' map; a host's cluster always exists, the default is for a race with its deletion. */
export const ratiosIn = (map: Map<string, AllocationRatios>, clusterId: string): AllocationRatios => map.get(clusterId) ?? DEFAULT_ALLOCATION_RATIOS;
