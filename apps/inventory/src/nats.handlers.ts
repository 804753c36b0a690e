import { Controller } from '@nestjs/common';
import { BaseRpcContext, Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import {
  ErrorCode,
  FlexmigError,
  GetHost,
  GetReservation,
  GetVm,
  HostHeartbeat,
  ListHosts,
  ListPlacementHosts,
  MessageOf,
  RegisterHost,
  ReleaseCapacity,
  RelocateVm,
  ReplyOf,
  RequestOf,
  ReserveCapacity,
  ListVms,
  subjectParams,
} from '@flexmig/contracts';
import { withLogFields } from '@flexmig/service-kit';
import { HostsService } from './hosts/hosts.service';
import { HeartbeatBatch } from './hosts/heartbeat-batch';
import { VmsService } from './vms/vms.service';
import { ReservationsService } from './reservations/reservations.service';
import { PlacementHosts } from './hosts/placement-hosts';

/** Inventory's NATS side: requests from agents and from the scheduler (validated by the transport). */
@Controller()
export class InventoryHandlers {
  constructor(
    private readonly hosts: HostsService,
    private readonly heartbeats: HeartbeatBatch,
    private readonly vms: VmsService,
    private readonly reservations: ReservationsService,
    private readonly placementHosts: PlacementHosts,
  ) {}

  @MessagePattern(RegisterHost.subject)
  async register(@Payload() r: RequestOf<typeof RegisterHost>, @Ctx() ctx: BaseRpcContext<[string]>): Promise<ReplyOf<typeof RegisterHost>> {
    assertSubjectNamesHost(RegisterHost.subject, ctx.getArgs()[0], r.hostId);
    return this.hosts.register(r);
  }

  @EventPattern<string>(HostHeartbeat.subject) // <string>: Nest 12's typed overload would infer the handler's data as {}
  async heartbeat(@Payload() m: MessageOf<typeof HostHeartbeat>, @Ctx() ctx: BaseRpcContext<[string]>): Promise<void> {
    assertSubjectNamesHost(HostHeartbeat.subject, ctx.getArgs()[0], m.hostId);
    return this.heartbeats.receive(m);
  }

  @MessagePattern(GetHost.subject)
  async getHost(r: RequestOf<typeof GetHost>): Promise<ReplyOf<typeof GetHost>> {
    return { host: await this.hosts.get(r.hostId) };
  }

  @MessagePattern(ListHosts.subject)
  async listHosts(r: RequestOf<typeof ListHosts>): Promise<ReplyOf<typeof ListHosts>> {
    const page = await this.hosts.page(r);
    return { hosts: page.items, nextCursor: page.nextCursor };
  }

  @MessagePattern(ListPlacementHosts.subject)
  listPlacementHosts(r: RequestOf<typeof ListPlacementHosts>): Promise<ReplyOf<typeof ListPlacementHosts>> {
    return this.placementHosts.page(r);
  }

  @MessagePattern(GetVm.subject)
  async getVm(r: RequestOf<typeof GetVm>): Promise<ReplyOf<typeof GetVm>> {
    return { vm: await this.vms.get(r.vmId) };
  }

  @MessagePattern(ReserveCapacity.subject)
  async reserve(r: RequestOf<typeof ReserveCapacity>): Promise<ReplyOf<typeof ReserveCapacity>> {
    return withLogFields({ migrationId: r.migrationId, vmId: r.vmId, hostId: r.hostId }, () => this.reservations.reserve(r));
  }

  @MessagePattern(GetReservation.subject)
  async getReservation(r: RequestOf<typeof GetReservation>): Promise<ReplyOf<typeof GetReservation>> {
    return { reservation: await this.reservations.get(r.migrationId) };
  }

  @MessagePattern(ReleaseCapacity.subject)
  async release(r: RequestOf<typeof ReleaseCapacity>): Promise<ReplyOf<typeof ReleaseCapacity>> {
    return withLogFields({ migrationId: r.migrationId }, async () => ({ released: await this.reservations.release(r.migrationId) }));
  }

  @MessagePattern(RelocateVm.subject)
  async relocate(r: RequestOf<typeof RelocateVm>): Promise<ReplyOf<typeof RelocateVm>> {
    return withLogFields({ migrationId: r.migrationId, vmId: r.vmId, hostId: r.toHostId }, async () => ({ vm: await this.vms.relocate(r) }));
  }

  @MessagePattern(ListVms.subject)
  async listVms(r: RequestOf<typeof ListVms>): Promise<ReplyOf<typeof ListVms>> {
    const page = await this.vms.page(r);
    return { vms: page.items, nextCursor: page.nextCursor };
  }
}

/**
 * NATS permissions vouch for the subject (an agent may publish only under its own host id), not for the
 * body: a host's registration or heartbeat counts only when both name the same host.
 */
export function assertSubjectNamesHost(template: string, subject: string | undefined, hostId: string): void {
  const fromSubject = subject === undefined ? undefined : subjectParams(template, subject)?.hostId;
  if (fromSubject !== hostId) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `the subject ${subject} names host ${fromSubject ?? '(none)'}, the message host ${hostId}: refused`, {
      subject,
      hostId,
    });
  }
}
