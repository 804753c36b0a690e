import { Controller } from '@nestjs/common';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import {
  GetHost,
  GetReservation,
  GetVm,
  HostHeartbeat,
  ListHosts,
  MessageOf,
  RegisterHost,
  ReleaseCapacity,
  RelocateVm,
  ReplyOf,
  RequestOf,
  ReserveCapacity,
  ListVms,
} from '@flexmig/contracts';
import { HostsService } from './hosts/hosts.service';
import { VmsService } from './vms/vms.service';
import { ReservationsService } from './reservations/reservations.service';

/** Inventory's NATS side: requests from agents and from the scheduler (validated by the transport). */
@Controller()
export class InventoryHandlers {
  constructor(
    private readonly hosts: HostsService,
    private readonly vms: VmsService,
    private readonly reservations: ReservationsService,
  ) {}

  @MessagePattern(RegisterHost.subject)
  register(r: RequestOf<typeof RegisterHost>): Promise<ReplyOf<typeof RegisterHost>> {
    return this.hosts.register(r);
  }

  @EventPattern<string>(HostHeartbeat.subject) // <string>: Nest 12's typed overload would infer the handler's data as {}
  heartbeat(m: MessageOf<typeof HostHeartbeat>): Promise<void> {
    return this.hosts.heartbeat(m.hostId);
  }

  @MessagePattern(GetHost.subject)
  async getHost(r: RequestOf<typeof GetHost>): Promise<ReplyOf<typeof GetHost>> {
    return { host: await this.hosts.get(r.hostId) };
  }

  @MessagePattern(ListHosts.subject)
  async listHosts(r: RequestOf<typeof ListHosts>): Promise<ReplyOf<typeof ListHosts>> {
    return { hosts: await this.hosts.list(r) };
  }

  @MessagePattern(GetVm.subject)
  async getVm(r: RequestOf<typeof GetVm>): Promise<ReplyOf<typeof GetVm>> {
    return { vm: await this.vms.get(r.vmId) };
  }

  @MessagePattern(ReserveCapacity.subject)
  async reserve(r: RequestOf<typeof ReserveCapacity>): Promise<ReplyOf<typeof ReserveCapacity>> {
    return { reservation: await this.reservations.reserve(r) };
  }

  @MessagePattern(GetReservation.subject)
  async getReservation(r: RequestOf<typeof GetReservation>): Promise<ReplyOf<typeof GetReservation>> {
    return { reservation: await this.reservations.get(r.migrationId) };
  }

  @MessagePattern(ReleaseCapacity.subject)
  async release(r: RequestOf<typeof ReleaseCapacity>): Promise<ReplyOf<typeof ReleaseCapacity>> {
    return { released: await this.reservations.release(r.migrationId) };
  }

  @MessagePattern(RelocateVm.subject)
  async relocate(r: RequestOf<typeof RelocateVm>): Promise<ReplyOf<typeof RelocateVm>> {
    return { vm: await this.vms.relocate(r) };
  }

  @MessagePattern(ListVms.subject)
  async listVms(r: RequestOf<typeof ListVms>): Promise<ReplyOf<typeof ListVms>> {
    return { vms: await this.vms.list(r) };
  }
}
