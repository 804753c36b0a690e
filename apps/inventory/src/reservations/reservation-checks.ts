/**
 * The checks that tie a reservation or a relocation to one migration of one VM to one host. Pure: each
 * gets what the caller read (in its transaction) and raises one specific error (STYLE.md 7).
 */
import { cpuChangedSinceVerdict, noReservation, reservationMismatch, reserveAcrossClusters, reserveOnOwnHost, vmAlreadyMigrating } from '../errors';

export interface HeldReservation {
  migrationId: string;
  vmId: string;
  hostId: string;
}

/** A VM is not reserved a place on the host it already runs on. */
export function checkNotOnTarget(vm: { id: string; hostId: string }, hostId: string): void {
  if (vm.hostId === hostId) throw reserveOnOwnHost(vm.id, hostId);
}

/** A VM migrates within its cluster. */
export function checkSameCluster(vm: { id: string; clusterId: string }, host: { id: string; clusterId: string }): void {
  if (vm.clusterId !== host.clusterId) throw reserveAcrossClusters(vm.id, vm.clusterId, host.id, host.clusterId);
}

/** One migration of a VM at a time: another migration's reservation of the same VM refuses a new one. */
export function checkNoOtherMigration(migrationId: string, vmId: string, reservationsOfVm: readonly HeldReservation[]): void {
  const other = reservationsOfVm.find((x) => x.migrationId !== migrationId);
  if (other) throw vmAlreadyMigrating(vmId, migrationId, other.migrationId);
}

/** A repeat of a reservation must name the same VM and host as the first. */
export function checkSameReservation(held: HeldReservation, asked: { vmId: string; hostId: string }): void {
  if (held.vmId !== asked.vmId || held.hostId !== asked.hostId) throw reservationMismatch(held.migrationId, held, asked);
}

/**
 * A relocation is the commit of the migration that reserved its target: refused without that
 * reservation, or when it was made for another VM or host. (Once committed the reservation is gone and
 * the VM is on the target: the caller answers a repeat before asking this.)
 */
export function checkRelocationReserved(held: HeldReservation | null, r: { migrationId: string; vmId: string; toHostId: string }): void {
  if (!held) throw noReservation(r.migrationId, r.vmId, r.toHostId);
  checkSameReservation(held, { vmId: r.vmId, hostId: r.toHostId });
}

/** What step 1's CPU verdict was asked about: the VM's baseline (and, for host-passthrough, its features) and the target's CPU. */
export interface VerifiedCpu {
  cpuBaseline: string;
  vmFeatures: readonly string[] | null;
  hostVendor: string;
  hostFeatures: readonly string[];
}

const sameList = (a: readonly string[] | null, b: readonly string[] | null): boolean =>
  a === b || (a !== null && b !== null && a.length === b.length && a.every((x, i) => x === b[i]));

/**
 * A reservation is made only under a verdict about the CPUs it binds: the VM's and the host's, as locked,
 * must be those the verdict was asked about (read before, with no lock held while cpu-compat answered).
 */
export function checkCpuAsVerified(
  verified: VerifiedCpu,
  vm: { id: string; cpuBaseline: string; cpuFeatures: readonly string[] | null },
  host: { id: string; cpuVendor: string; cpuFeatures: readonly string[] },
): void {
  if (vm.cpuBaseline !== verified.cpuBaseline || !sameList(vm.cpuFeatures, verified.vmFeatures)) throw cpuChangedSinceVerdict(vm.id, host.id, 'VM');
  if (host.cpuVendor !== verified.hostVendor || !sameList(host.cpuFeatures, verified.hostFeatures)) throw cpuChangedSinceVerdict(vm.id, host.id, 'host');
}
