import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { prepared, runPrepared } from '@flexmig/persistence';
import { type HostCpu, Reservation, Verdict } from '@flexmig/contracts';
import { HostEntity, ReservationEntity, VmEntity } from '../entities';
import { reservationView } from '../views';
import { cpuIncompatible, hostNotFound, vmNotFound } from '../errors';
import { lockHostWithRoom } from '../capacity';
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
   * the verdict asked again, as every attempt of step 1 asks it).
   *
   * The verdict is asked with no transaction open (docs/reconciliation.md: no inventory transaction waits on
   * NATS); the transaction then locks the VM and the host and refuses, retryably, if either's CPU is not
   * what the verdict was about (a re-registration with another CPU, a baseline changed by IMC meanwhile).
   */
  async reserve(r: { migrationId: string; vmId: string; hostId: string }): Promise<{ reservation: Reservation; verdict: Verdict }> {
    const { verified, verdict } = await this.verify(r);
    const reservation = await this.db.transaction(async (m) => {
      // the VM's row lock serialises two reservations of one VM (and a relocation of it)
      const [vm] = await runPrepared<ReservedVm>(m, VM_LOCKED, [r.vmId]);
      if (!vm) throw vmNotFound(r.vmId);
      // after the lock, in one read: this migration's reservation (a repeat), and any other of the VM
      const held = await runPrepared<ReservationEntity>(m, RESERVATIONS_OF_MIGRATION_OR_VM, [r.migrationId, r.vmId]);
      const existing = held.find((x) => x.migrationId === r.migrationId);
      if (existing) {
        checkSameReservation(existing, r);
        return reservationView(existing);
      }
      checkNotOnTarget(vm, r.hostId);
      checkNoOtherMigration(r.migrationId, vm.id, held);
      const host = await lockHostWithRoom(m, r.hostId, vm);
      checkSameCluster(vm, host);
      checkCpuAsVerified(verified, vm, host);
      const [inserted] = await runPrepared<ReservationEntity>(m, INSERT_RESERVATION, [r.migrationId, vm.id, r.hostId, vm.memoryMiB, vm.vcpus]);
      return reservationView(inserted!);
    });
    return { reservation, verdict };
  }

  /** cpu-compat's verdict on the VM's baseline and the target's CPU as read now, refused with the missing features. */
  private async verify(r: { vmId: string; hostId: string }): Promise<{ verified: VerifiedCpu; verdict: Verdict }> {
    const [[vm], [host]] = await Promise.all([runPrepared<ReservedVm>(this.db, VM_TO_VERIFY, [r.vmId]), runPrepared<HostToVerify>(this.db, HOST_TO_VERIFY, [r.hostId])]);
    if (!vm) throw vmNotFound(r.vmId);
    checkNotOnTarget(vm, r.hostId);
    if (!host) throw hostNotFound(r.hostId);
    checkSameCluster(vm, host);
    const verified: VerifiedCpu = { cpuBaseline: vm.cpuBaseline, vmFeatures: vm.cpuFeatures, hostVendor: host.cpuVendor, hostFeatures: host.cpuFeatures };
    const verdict = await this.cpu.verdict(vm.cpuBaseline, { vendor: host.cpuVendor as HostCpu['vendor'], features: host.cpuFeatures }, vm.cpuFeatures ?? undefined);
    if (!verdict.compatible) throw cpuIncompatible(host.id, vm.name, verdict);
    return { verified, verdict };
  }

  /** A migration's reservation, or null (agents check it before they take part in the migration). */
  async get(migrationId: string): Promise<Reservation | null> {
    const [found] = await runPrepared<ReservationEntity>(this.db, RESERVATION_OF_MIGRATION, [migrationId]);
    return found ? reservationView(found) : null;
  }

  /** Compensation of step 1. */
  async release(migrationId: string): Promise<boolean> {
    const res = await this.db.getRepository(ReservationEntity).delete({ migrationId });
    return (res.affected ?? 0) > 0;
  }
}

// Step 1 and the agents' checks of it run these on every migration: prepared, parsed and planned once per connection.
const RESERVATION_COLUMNS = 'migration_id AS "migrationId", vm_id AS "vmId", host_id AS "hostId", memory_mib AS "memoryMiB", vcpus, created_at AS "createdAt"';
const VM_COLUMNS = 'id, name, host_id AS "hostId", cluster_id AS "clusterId", memory_mib AS "memoryMiB", vcpus, cpu_baseline AS "cpuBaseline", cpu_features AS "cpuFeatures"';

/** The VM as step 1 checks it. */
type ReservedVm = Pick<VmEntity, 'id' | 'name' | 'hostId' | 'clusterId' | 'memoryMiB' | 'vcpus' | 'cpuBaseline' | 'cpuFeatures'>;
type HostToVerify = Pick<HostEntity, 'id' | 'clusterId' | 'cpuVendor' | 'cpuFeatures'>;

const VM_TO_VERIFY = prepared('inventory_vm_to_verify', `SELECT ${VM_COLUMNS} FROM vms WHERE id = $1`);
const VM_LOCKED = prepared('inventory_vm_locked', `SELECT ${VM_COLUMNS} FROM vms WHERE id = $1 FOR UPDATE`);
const HOST_TO_VERIFY = prepared('inventory_host_to_verify', 'SELECT id, cluster_id AS "clusterId", cpu_vendor AS "cpuVendor", cpu_features AS "cpuFeatures" FROM hosts WHERE id = $1');
const RESERVATIONS_OF_MIGRATION_OR_VM = prepared('inventory_reservations_of_migration_or_vm', `SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE migration_id = $1 OR vm_id = $2`);
const RESERVATION_OF_MIGRATION = prepared('inventory_reservation_of_migration', `SELECT ${RESERVATION_COLUMNS} FROM reservations WHERE migration_id = $1`);
const INSERT_RESERVATION = prepared(
  'inventory_insert_reservation',
  `INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus) VALUES ($1, $2, $3, $4, $5) RETURNING ${RESERVATION_COLUMNS}`,
);
