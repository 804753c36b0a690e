import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Reservation } from '@flexmig/contracts';
import { ReservationEntity, VmEntity } from '../entities';
import { reservationView } from '../views';
import { vmNotFound } from '../errors';
import { lockHostWithRoom } from '../vms/vms.service';
import { checkNoOtherMigration, checkNotOnTarget, checkSameCluster, checkSameReservation } from './reservation-checks';

@Injectable()
export class ReservationsService {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * Saga step 1: hold the VM's size on the target. A repeat for the same migration returns the first.
   * Only for a VM that runs elsewhere in the same cluster and has no other migration's reservation: the
   * reservation is what agents and `vm.relocate` later check a migration against.
   */
  async reserve(r: { migrationId: string; vmId: string; hostId: string }): Promise<Reservation> {
    return this.db.transaction(async (m) => {
      const existing = await m.getRepository(ReservationEntity).findOneBy({ migrationId: r.migrationId });
      if (existing) {
        checkSameReservation(existing, r);
        return reservationView(existing);
      }
      // the VM's row lock serialises two reservations of one VM (and a relocation of it)
      const vm = await m.getRepository(VmEntity).findOne({ where: { id: r.vmId }, lock: { mode: 'pessimistic_write' } });
      if (!vm) throw vmNotFound(r.vmId);
      checkNotOnTarget(vm, r.hostId);
      checkNoOtherMigration(r.migrationId, vm.id, await m.getRepository(ReservationEntity).findBy({ vmId: vm.id }));
      const host = await lockHostWithRoom(m, r.hostId, vm);
      checkSameCluster(vm, host);
      await m.getRepository(ReservationEntity).insert({ migrationId: r.migrationId, vmId: vm.id, hostId: r.hostId, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus });
      return reservationView(await m.getRepository(ReservationEntity).findOneByOrFail({ migrationId: r.migrationId }));
    });
  }

  /** A migration's reservation, or null (agents check it before they take part in the migration). */
  async get(migrationId: string): Promise<Reservation | null> {
    const found = await this.db.getRepository(ReservationEntity).findOneBy({ migrationId });
    return found ? reservationView(found) : null;
  }

  /** Compensation of step 1. */
  async release(migrationId: string): Promise<boolean> {
    const res = await this.db.getRepository(ReservationEntity).delete({ migrationId });
    return (res.affected ?? 0) > 0;
  }
}
