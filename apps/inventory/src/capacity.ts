import { EntityManager } from 'typeorm';
import { type AllocationRatios, ErrorCode, FlexmigError, hostCapacity } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { ratiosOf } from './views';
import { hostDown, hostInMaintenance, insufficientCapacity } from './errors';

export interface Allocation {
  memoryMiB: number;
  vcpus: number;
}

/**
 * The one definition of what a host holds: its VMs that are starting or running, and the reservations of
 * migrations coming to it, as rows of `host_id, memory_mib, vcpus`; and how many VMs it has (`vms`: in
 * every state; a reservation is not one). PostgreSQL keeps this per host in `host_allocations` (migrations
 * 1764600000000-host-allocations and 1764900000000-host-vm-counts, whose triggers apply it to each change of
 * `vms` and `reservations`): the readers read that table, and `host-allocations.int.spec` holds the table
 * to this query (a host of nothing has no row here; the table may keep one of zeros).
 */
export const HELD_BY_HOST_SQL = `SELECT host_id, sum(memory_mib)::int AS memory_mib, sum(vcpus)::int AS vcpus, sum(vms)::int AS vms FROM (
     SELECT host_id, CASE WHEN state IN ('starting', 'running') THEN memory_mib ELSE 0 END, CASE WHEN state IN ('starting', 'running') THEN vcpus ELSE 0 END, 1 FROM vms
     UNION ALL SELECT host_id, memory_mib, vcpus, 0 FROM reservations) held(host_id, memory_mib, vcpus, vms)
   GROUP BY host_id HAVING sum(memory_mib) <> 0 OR sum(vcpus) <> 0 OR sum(vms) <> 0`;

/** What the hosts named in $1 hold: every VM creation and reservation asks it (prepared). */
const HELD_BY_HOSTS = prepared('inventory_held_by_hosts', 'SELECT host_id, memory_mib, vcpus FROM host_allocations WHERE host_id = ANY($1)');

/** What VMs (starting or running) and incoming-migration reservations hold on each of the hosts named (none: nothing). */
export async function allocations(m: EntityManager, hostIds: string[]): Promise<Map<string, Allocation>> {
  const rows = await runPrepared<{ host_id: string; memory_mib: number; vcpus: number }>(m, HELD_BY_HOSTS, [hostIds]);
  return new Map(rows.map((r) => [r.host_id, { memoryMiB: r.memory_mib, vcpus: r.vcpus }]));
}

export const none: Allocation = { memoryMiB: 0, vcpus: 0 };

/** A host as `lockHostWithRoom` read it under its row lock, with its cluster's mode and ratios. */
export interface LockedHost {
  id: string;
  clusterId: string;
  cpuVendor: string;
  cpuFeatures: string[];
  /** The cluster's CPU mode as of the lock (share-locked with `shareCluster`: it cannot change before the commit). */
  clusterImcMode: string | null;
  ratios: AllocationRatios;
}

/** A host row as the lock statements read it (`LOCKED_HOST_COLUMNS`). */
export interface LockedRow {
  id: string;
  cluster_id: string;
  state: string;
  maintenance: boolean;
  memory_mib: number;
  vcpus: number;
  cpu_vendor: string;
  cpu_features: string[];
  migration_address: string;
  imc_mode: string | null;
  cpu_allocation_ratio: number;
  memory_allocation_ratio: number;
}

/** What the statements that lock a host read of it and of its cluster (`h`, `c`): a `LockedRow`. */
const LOCKED_HOST_COLUMNS = `h.id, h.cluster_id, h.state, h.maintenance, h.memory_mib, h.vcpus, h.cpu_vendor, h.cpu_features, h.migration_address,
     c.imc_mode, c.cpu_allocation_ratio, c.memory_allocation_ratio`;

/** The host named by `param` with its cluster, the host's row locked (and the cluster's shared, with `shareCluster`). */
export const lockHostSql = (shareCluster: boolean, param = '$1') =>
  `SELECT ${LOCKED_HOST_COLUMNS}
   FROM hosts h JOIN clusters c ON c.id = h.cluster_id WHERE h.id = ${param} FOR UPDATE OF h${shareCluster ? ' FOR SHARE OF c' : ''}`;
const LOCK_HOST = prepared('inventory_lock_host', lockHostSql(false));
const LOCK_HOST_SHARE_CLUSTER = prepared('inventory_lock_host_share_cluster', lockHostSql(true));

/** A locked host that may take more (it exists, is up, out of maintenance), with what it can hold under its cluster's ratios. */
export interface HostToFill extends LockedHost {
  capacity: Allocation;
}

/** The host a lock statement read (none: it does not exist), refused unless it may take more. */
export function hostToFill(row: LockedRow | undefined, hostId: string): HostToFill {
  if (!row) throw new FlexmigError(ErrorCode.NotFound, `host ${hostId} does not exist`, { hostId });
  if (row.state !== 'up') throw hostDown(hostId);
  if (row.maintenance) throw hostInMaintenance(hostId);
  const ratios = ratiosOf({ cpuAllocationRatio: row.cpu_allocation_ratio, memoryAllocationRatio: row.memory_allocation_ratio });
  return {
    id: row.id,
    clusterId: row.cluster_id,
    cpuVendor: row.cpu_vendor,
    cpuFeatures: row.cpu_features,
    clusterImcMode: row.imc_mode,
    ratios,
    capacity: hostCapacity({ memoryMiB: row.memory_mib, vcpus: row.vcpus }, ratios),
  };
}

/** Whether `need` fits beside what the host holds; else INSUFFICIENT_CAPACITY with what is free. */
export function checkRoom(host: HostToFill, held: Allocation, need: Allocation): void {
  const free = { memoryMiB: host.capacity.memoryMiB - held.memoryMiB, vcpus: host.capacity.vcpus - held.vcpus };
  if (free.memoryMiB < need.memoryMiB || free.vcpus < need.vcpus) throw insufficientCapacity(host.id, need, free, host.ratios);
}

/**
 * Checks that a host can take `need` more under its cluster's allocation ratios, inside a transaction,
 * and holds the host's row lock until it ends. VM creation comes through here; step 1's reservation
 * does the same in fewer statements (reservations.service.ts) with `hostToFill` and `checkRoom`.
 * With `shareCluster` the cluster's row is share-locked by the same statement: its CPU mode cannot change
 * (a mode change locks it for update) until the transaction ends.
 *
 * Two statements: the host with its cluster, locked; then what the host holds, in a statement of its own
 * after the lock was granted (READ COMMITTED: it sees every allocation committed before the lock).
 */
export async function lockHostWithRoom(m: EntityManager, hostId: string, need: Allocation, o: { shareCluster?: boolean } = {}): Promise<LockedHost> {
  const [row] = await runPrepared<LockedRow>(m, o.shareCluster ? LOCK_HOST_SHARE_CLUSTER : LOCK_HOST, [hostId]);
  const host = hostToFill(row, hostId);
  checkRoom(host, (await allocations(m, [hostId])).get(hostId) ?? none, need);
  return host;
}
