import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { prepared, runPrepared } from '@flexmig/persistence';
import { type HostCpu, Reservation, Verdict } from '@flexmig/contracts';
import { HostEntity, ReservationEntity, VmEntity } from '../entities';
import { reservationView } from '../views';
import { cpuIncompatible, hostNotFound, vmNotFound } from '../errors';
import { checkInserted, type HeldByInsert, hostToFill, insertIfRoomSql, type LockedRow, lockHostSql } from '../capacity';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import {
  checkCpuAsVerified,
  checkNoOtherMigration,
  checkNotOnTarget,
  checkSameCluster,
  checkSameReservation,
  type VerifiedCpu,
} from './reservation-checks';

@Injectable()
export class ReservationsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly cpu: CpuCompatClient,
  ) {}

  /**
   * Saga step 1, whole, in one request of the scheduler's (issue 11: one NATS round trip per step): the
   * target's CPU must run the VM's baseline (cpu-compat's verdict), then the VM's size is held there.
   * Only for a VM that runs elsewhere in the same cluster, on a host that is up and out of maintenance, with
   * room, and without another migration's reservation: the reservation is what agents and `vm.relocate`
   * later check a migration against. A repeat for the same migration returns the first reservation (with
   * the verdict checked again, as every attempt of step 1 checks it).
   *
   * No inventory transaction waits on NATS (docs/reconciliation.md). cpu-compat's answer to the same question
   * (the VM's baseline on the target's CPU) is kept a minute by CpuCompatClient, and nearly every migration
   * asks one a migration before it asked: then the transaction that locks the VM and the host finds the
   * verdict about what it locked, and reserves in one round of statements. Otherwise (no answer kept, or any
   * refusal) that transaction ends without a change, the verdict is asked with no transaction open, and a
   * second transaction reserves only if the VM's baseline and the host's CPU are still what the verdict was
   * about (else a retryable CONFLICT: a re-registration with another CPU, a baseline changed by IMC meanwhile).
   */
  async reserve(r: { migrationId: string; vmId: string; hostId: string }): Promise<Reserved> {
    const known = await this.db.transaction((m) => this.reserveLocked(m, r, (vm, host) => this.knownVerdict(r, vm, host)));
    if (known) return known;
    const asked = await this.verify(r);
    const reserved = await this.db.transaction((m) => this.reserveLocked(m, r, () => asked));
    if (!reserved) throw new Error(`the reservation of migration ${r.migrationId} was decided without its verdict`);
    return reserved;
  }

  /**
   * The VM's verdict on the target as locked, when a compatible answer is kept; undefined otherwise (the caller
   * then takes the path that asks, and refuses, as always). The checks before the verdict are `verify`'s.
   */
  private knownVerdict(r: { hostId: string }, vm: ReservedVm, host: LockedRow | undefined): { verified: VerifiedCpu; verdict: Verdict } | undefined {
    checkNotOnTarget(vm, r.hostId);
    if (!host) throw hostNotFound(r.hostId);
    checkSameCluster(vm, { id: host.id, clusterId: host.cluster_id });
    const verified = verifiedCpu(vm, host.cpu_vendor, host.cpu_features);
    const verdict = this.cpu.knownVerdict(...verdictQuestion(verified));
    return verdict?.compatible ? { verified, verdict } : undefined;
  }

  /**
   * Step 1's reservation in the caller's transaction, with the verdict `verdictFor` gives for the VM and the
   * target as locked; undefined, with nothing changed, when it gives none.
   */
  private async reserveLocked(
    m: EntityManager,
    r: { migrationId: string; vmId: string; hostId: string },
    verdictFor: (vm: ReservedVm, host: LockedRow | undefined) => { verified: VerifiedCpu; verdict: Verdict } | undefined,
  ): Promise<Reserved | undefined> {
    // the VM's row lock serialises two reservations of one VM (and a relocation of it)
    const [vm] = await runPrepared<ReservedVm>(m, VM_LOCKED, [r.vmId]);
    if (!vm) throw vmNotFound(r.vmId);
    // after that lock, in one statement: this migration's reservation (a repeat) and any other of the VM,
    // and the target locked with its cluster (a row whose host columns are null: no such host)
    const rows = await runPrepared<HeldAndHostRow>(m, HELD_AND_HOST_LOCKED, [r.migrationId, r.vmId, r.hostId]);
    const locked = rows[0]!.id === null ? undefined : (rows[0] as LockedRow);
    const decided = verdictFor(vm, locked);
    if (!decided) return undefined;
    const { verified, verdict } = decided;
    const held = rows.filter((x) => x.res_migration_id !== null).map(reservationOfRow);
    const existing = held.find((x) => x.migrationId === r.migrationId);
    if (existing) {
      checkSameReservation(existing, r);
      return { reservation: reservationView(existing), verdict, sourceHostId: vm.hostId, targetMigrationAddress: locked?.migration_address ?? null };
    }
    checkNotOnTarget(vm, r.hostId);
    checkNoOtherMigration(r.migrationId, vm.id, held);
    const host = hostToFill(locked, r.hostId);
    checkSameCluster(vm, host);
    checkCpuAsVerified(verified, vm, host);
    // what the host holds is read by the insert, a statement begun after the host's lock was granted
    // (READ COMMITTED: it sees every allocation committed before): inserted only where the VM fits
    const [placed] = await runPrepared<ReservationEntity & HeldByInsert>(m, INSERT_RESERVATION_IF_ROOM, [
      r.migrationId,
      vm.id,
      r.hostId,
      vm.memoryMiB,
      vm.vcpus,
      host.capacity.memoryMiB,
      host.capacity.vcpus,
    ]);
    // one row always: the reservation inserted, or (migration id null) what the host holds
    checkInserted(host, vm, placed, (p) => p.migrationId !== null, `the reservation of migration ${r.migrationId}`);
    return { reservation: reservationView(placed), verdict, sourceHostId: vm.hostId, targetMigrationAddress: locked?.migration_address ?? null };
  }

  /** cpu-compat's verdict on the VM's baseline and the target's CPU as read now, refused with the missing features. */
  private async verify(r: { vmId: string; hostId: string }): Promise<{ verified: VerifiedCpu; verdict: Verdict }> {
    const [[vm], [host]] = await Promise.all([runPrepared<ReservedVm>(this.db, VM_TO_VERIFY, [r.vmId]), runPrepared<HostToVerify>(this.db, HOST_TO_VERIFY, [r.hostId])]);
    if (!vm) throw vmNotFound(r.vmId);
    checkNotOnTarget(vm, r.hostId);
    if (!host) throw hostNotFound(r.hostId);
    checkSameCluster(vm, host);
    const verified = verifiedCpu(vm, host.cpuVendor, host.cpuFeatures);
    const verdict = await this.cpu.verdict(...verdictQuestion(verified));
    if (!verdict.compatible) throw cpuIncompatible(host.id, vm.name, verdict);
    return { verified, verdict };
  }

  /**
   * A migration's reservation, or null, with the migration address its host registered (agents check both before they
   * take part in the migration: the source sends memory only there).
   */
  async get(migrationId: string): Promise<{ reservation: Reservation | null; targetMigrationAddress: string | null }> {
    const [found] = await runPrepared<ReservationEntity & { targetMigrationAddress: string | null }>(this.db, RESERVATION_OF_MIGRATION, [migrationId]);
    return found ? { reservation: reservationView(found), targetMigrationAddress: found.targetMigrationAddress } : { reservation: null, targetMigrationAddress: null };
  }

  /** Compensation of step 1: whether there was a reservation, and the hosts of its migration (target, then the VM's). */
  async release(migrationId: string): Promise<{ released: boolean; hostIds: string[] }> {
    const rows = await runPrepared<{ host_id: string; source_host_id: string | null }>(this.db, RELEASE_RESERVATION, [migrationId]);
    return { released: rows.length > 0, hostIds: rows.flatMap((x) => [x.host_id, ...(x.source_host_id ? [x.source_host_id] : [])]) };
  }
}

/** Step 1's reservation, the verdict it was made under, and where its migration's agents are told of it (ReservationNotice). */
export interface Reserved {
  reservation: Reservation;
  verdict: Verdict;
  /** The VM's host as locked: the migration's source. */
  sourceHostId: string;
  /** The target's registered migration address as locked (null: a repeat whose host row could not be read). */
  targetMigrationAddress: string | null;
}

/** What a verdict is about: the VM's baseline (and a passthrough VM's features) on the host's CPU. */
const verifiedCpu = (vm: ReservedVm, hostVendor: string, hostFeatures: string[]): VerifiedCpu => ({ cpuBaseline: vm.cpuBaseline, vmFeatures: vm.cpuFeatures, hostVendor, hostFeatures });
/** The question to cpu-compat about `v`, as CpuCompatClient's verdict and knownVerdict take it. */
const verdictQuestion = (v: VerifiedCpu): [string, Pick<HostCpu, 'vendor' | 'features'>, readonly string[] | undefined] => [
  v.cpuBaseline,
  { vendor: v.hostVendor as HostCpu['vendor'], features: [...v.hostFeatures] },
  v.vmFeatures ?? undefined,
];

// Step 1 and the agents' checks of it run these on every migration: prepared, parsed and planned once per connection.
const RESERVATION_COLUMNS = 'migration_id AS "migrationId", vm_id AS "vmId", host_id AS "hostId", memory_mib AS "memoryMiB", vcpus, created_at AS "createdAt"';
const VM_COLUMNS = 'id, name, host_id AS "hostId", cluster_id AS "clusterId", memory_mib AS "memoryMiB", vcpus, cpu_baseline AS "cpuBaseline", cpu_features AS "cpuFeatures"';

/** The VM as step 1 checks it. */
type ReservedVm = Pick<VmEntity, 'id' | 'name' | 'hostId' | 'clusterId' | 'memoryMiB' | 'vcpus' | 'cpuBaseline' | 'cpuFeatures'>;
type HostToVerify = Pick<HostEntity, 'id' | 'clusterId' | 'cpuVendor' | 'cpuFeatures'>;

const VM_TO_VERIFY = prepared('inventory_vm_to_verify', `SELECT ${VM_COLUMNS} FROM vms WHERE id = $1`);
const VM_LOCKED = prepared('inventory_vm_locked', `SELECT ${VM_COLUMNS} FROM vms WHERE id = $1 FOR UPDATE`);
const HOST_TO_VERIFY = prepared('inventory_host_to_verify', 'SELECT id, cluster_id AS "clusterId", cpu_vendor AS "cpuVendor", cpu_features AS "cpuFeatures" FROM hosts WHERE id = $1');
/** A row of `HELD_AND_HOST_LOCKED`: one of the VM's reservations (or none: nulls) beside the target as locked. */
type HeldAndHostRow = { [K in keyof LockedRow]: LockedRow[K] | null } & {
  res_migration_id: string | null;
  res_vm_id: string;
  res_host_id: string;
  res_memory_mib: number;
  res_vcpus: number;
  res_created_at: Date;
};
const reservationOfRow = (x: HeldAndHostRow): ReservationEntity => ({
  migrationId: x.res_migration_id!,
  vmId: x.res_vm_id,
  hostId: x.res_host_id,
  memoryMiB: x.res_memory_mib,
  vcpus: x.res_vcpus,
  createdAt: x.res_created_at,
});
/**
 * Step 1, after the VM's lock: the reservations of this migration ($1) or of the VM ($2), a row each, each
 * beside the target ($3) and its cluster, the target's row locked (capacity.ts's lock, as VM creation
 * takes it); one row with null reservation columns when there is none, with null host columns when no
 * such host exists. The reservations are read as of the statement's start: only a transaction holding
 * the VM's lock, as this one does, adds one of the VM's.
 */
const HELD_AND_HOST_LOCKED = prepared(
  'inventory_held_and_host_locked',
  `SELECT r.migration_id AS res_migration_id, r.vm_id AS res_vm_id, r.host_id AS res_host_id, r.memory_mib AS res_memory_mib,
     r.vcpus AS res_vcpus, r.created_at AS res_created_at, h.*
   FROM (SELECT 1) one
   LEFT JOIN LATERAL (${lockHostSql(false, '$3')}) h ON true
   LEFT JOIN reservations r ON r.migration_id = $1 OR r.vm_id = $2`,
);
/** Deletes a migration's reservation: its host, and the VM's (the source; null should the VM be gone). */
const RELEASE_RESERVATION = prepared(
  'inventory_release_reservation',
  `WITH gone AS (DELETE FROM reservations WHERE migration_id = $1 RETURNING vm_id, host_id)
   SELECT g.host_id, v.host_id AS source_host_id FROM gone g LEFT JOIN vms v ON v.id = g.vm_id`,
);
/** A migration's reservation with its host's registered migration address (the host's row stays: the reservation references it). */
const RESERVATION_OF_MIGRATION = prepared(
  'inventory_reservation_of_migration_and_address',
  `SELECT r.*, h.migration_address AS "targetMigrationAddress"
   FROM (SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE migration_id = $1) r LEFT JOIN hosts h ON h.id = r."hostId"`,
);
/**
 * The reservation ($1–$5), inserted only where it fits beside what the host holds now (`host_allocations`)
 * under its capacity ($6 MiB, $7 vCPUs: whole numbers, hostCapacity); the row always comes back with what the host held, and with the
 * reservation's columns null when it did not fit.
 */
const INSERT_RESERVATION_IF_ROOM = prepared(
  'inventory_insert_reservation_if_room',
  `${insertIfRoomSql({
    insert: 'INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus)',
    values: '$1::uuid, $2::uuid, $3::text, $4::int, $5::int',
    host: '$3', need: { memoryMiB: '$4', vcpus: '$5' }, capacity: { memoryMiB: '$6', vcpus: '$7' }, returning: RESERVATION_COLUMNS,
  })}
   SELECT held.memory_mib AS held_memory, held.vcpus AS held_vcpus, ins.* FROM held LEFT JOIN ins ON true`,
);
