import { EntityManager } from 'typeorm';

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
