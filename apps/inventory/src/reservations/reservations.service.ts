import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ErrorCode, FlexmigError, Reservation } from '@flexmig/contracts';
import { ReservationEntity, VmEntity } from '../entities';
import { reservationView } from '../views';
import { vmNotFound } from '../errors';
import { lockHostWithRoom } from '../vms/vms.service';

@Injectable()
export class ReservationsService {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** Saga step 1: hold the VM's size on the target. A repeat for the same migration returns the first. */
  async reserve(r: { migrationId: string; vmId: string; hostId: string }): Promise<Reservation> {
    return this.db.transaction(async (m) => {
      const existing = await m.getRepository(ReservationEntity).findOneBy({ migrationId: r.migrationId });
      if (existing) {
        if (existing.hostId !== r.hostId || existing.vmId !== r.vmId) {
          throw new FlexmigError(ErrorCode.Conflict, `migration ${r.migrationId} already holds a reservation for another VM or host`);
        }
        return reservationView(existing);
      }
      const vm = await m.getRepository(VmEntity).findOneBy({ id: r.vmId });
      if (!vm) throw vmNotFound(r.vmId);
      await lockHostWithRoom(m, r.hostId, vm);
      await m.getRepository(ReservationEntity).insert({ migrationId: r.migrationId, vmId: vm.id, hostId: r.hostId, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus });
      return reservationView(await m.getRepository(ReservationEntity).findOneByOrFail({ migrationId: r.migrationId }));
    });
  }

  /** Compensation of step 1. */
  async release(migrationId: string): Promise<boolean> {
    const res = await this.db.getRepository(ReservationEntity).delete({ migrationId });
    return (res.affected ?? 0) > 0;
  }
}
