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

/**
 * The head of a statement that inserts a row only where it fits beside what its host holds now
 * (`host_allocations`, read by the statement itself: run it after the host's row lock was granted, and it
 * sees every allocation committed before): `WITH held AS (…), ins AS (<insert> SELECT <values> FROM held
 * WHERE it fits RETURNING <returning>)`, for the caller's own last SELECT over `held` (the host's
 * `memory_mib`, `vcpus`) and `ins`. Parameters are named as in the statement (`$3`), the need and the
 * capacity as whole numbers (hostCapacity).
 */
export function insertIfRoomSql(o: { insert: string; values: string; host: string; need: { memoryMiB: string; vcpus: string }; capacity: { memoryMiB: string; vcpus: string }; returning: string }): string {
  return `WITH held AS (
     SELECT coalesce(a.memory_mib, 0) AS memory_mib, coalesce(a.vcpus, 0) AS vcpus
     FROM (SELECT 1) one LEFT JOIN host_allocations a ON a.host_id = ${o.host}),
   ins AS (
     ${o.insert}
     SELECT ${o.values} FROM held
     WHERE held.memory_mib + ${o.need.memoryMiB}::int <= ${o.capacity.memoryMiB}::int AND held.vcpus + ${o.need.vcpus}::int <= ${o.capacity.vcpus}::int
     RETURNING ${o.returning})`;
}

/** What an `insertIfRoomSql` statement's last SELECT gives besides its own columns: what the host held. */
export interface HeldByInsert {
  held_memory: number;
  held_vcpus: number;
}

/**
 * Checks the answer of an `insertIfRoomSql` statement (`placed`, `inserted(placed)`: whether the row went in):
 * refused INSUFFICIENT_CAPACITY with what the host held when it did not fit; an internal error when the
 * statement answered no row, or did not insert though the same sums in whole numbers say it fits.
 */
export function checkInserted<T extends HeldByInsert>(host: HostToFill, need: Allocation, placed: T | undefined, inserted: (p: T) => boolean, what: string): asserts placed is T {
  if (!placed) throw new Error(`the insert of ${what} answered no row`);
  if (inserted(placed)) return;
  checkRoom(host, { memoryMiB: placed.held_memory, vcpus: placed.held_vcpus }, need); // throws
  throw new Error(`${what} not inserted though ${host.id} has room for it`);
}

/** A host as `lockHostToFill` read it under its row lock, with its cluster's mode and ratios. */
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
 * Locks a host for a change of what it holds, inside a transaction, and refuses one that may not take more
 * (absent, down, in maintenance); the row lock holds until the transaction ends. With `shareCluster` the
 * cluster's row is share-locked by the same statement: its CPU mode cannot change (a mode change locks it
 * for update) until the transaction ends.
 *
 * Whether the change fits is the writer's next statement, begun after the lock was granted (READ COMMITTED:
 * it sees every allocation committed before): VM creation inserts the VM only where it fits beside
 * `host_allocations` (vms.service.ts), as step 1 does its reservation after taking the same lock in a
 * statement of its own (reservations.service.ts); `checkInserted` words the refusal.
 */
export async function lockHostToFill(m: EntityManager, hostId: string, o: { shareCluster?: boolean } = {}): Promise<HostToFill> {
  const [row] = await runPrepared<LockedRow>(m, o.shareCluster ? LOCK_HOST_SHARE_CLUSTER : LOCK_HOST, [hostId]);
  return hostToFill(row, hostId);
}
