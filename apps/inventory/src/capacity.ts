import { EntityManager, In } from 'typeorm';
import { type AllocationRatios, DEFAULT_ALLOCATION_RATIOS } from '@flexmig/contracts';
import { ClusterEntity } from './entities';
import { ratiosOf } from './views';

export interface Allocation {
  memoryMiB: number;
  vcpus: number;
}

/** What VMs (starting or running) and incoming-migration reservations hold on each host. */
export async function allocations(m: EntityManager, hostIds?: string[]): Promise<Map<string, Allocation>> {
  // the host filter sits inside both halves, so one host's lookup uses the host_id indexes instead of
  // summing every VM and reservation of the inventory
  const only = hostIds ? 'AND host_id = ANY($1)' : '';
  const rows: { host_id: string; mem: number; cpus: number }[] = await m.query(
    `SELECT host_id, sum(memory_mib)::int AS mem, sum(vcpus)::int AS cpus FROM (
       SELECT host_id, memory_mib, vcpus FROM vms WHERE state IN ('starting', 'running') ${only}
       UNION ALL SELECT host_id, memory_mib, vcpus FROM reservations WHERE true ${only}) held
     GROUP BY host_id`,
    hostIds ? [hostIds] : [],
  );
  return new Map(rows.map((r) => [r.host_id, { memoryMiB: r.mem, vcpus: r.cpus }]));
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
