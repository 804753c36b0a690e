import { Controller } from '@nestjs/common';
import { BaseRpcContext, Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import {
  GetHost,
  GetReservation,
  GetVm,
  ListHosts,
  ListPlacementHosts,
  MAX_PAGE_LIMIT,
  RegisterHost,
  ReleaseCapacity,
  RelocateVm,
  ReplyOf,
  RequestOf,
  ReserveCapacity,
  ListVms,
} from '@flexmig/contracts';
import { withLogFields } from '@flexmig/service-kit';
import { HostsService } from './hosts/hosts.service';
import { VmsService } from './vms/vms.service';
import { ReservationsService } from './reservations/reservations.service';
import { ReservationNotifier } from './reservations/reservation-notifier';
import { PlacementHosts } from './hosts/placement-hosts';
import { assertSubjectNamesHost } from './hosts/host-subject';

/** Inventory's NATS side: requests from agents and from the scheduler (validated by the transport). Heartbeats: HeartbeatListener. */
@Controller()
export class InventoryHandlers {
  constructor(
    private readonly hosts: HostsService,
    private readonly vms: VmsService,
    private readonly reservations: ReservationsService,
    private readonly placementHosts: PlacementHosts,
    private readonly notifier: ReservationNotifier,
  ) {}

  @MessagePattern(RegisterHost.subject)
  async register(@Payload() r: RequestOf<typeof RegisterHost>, @Ctx() ctx: BaseRpcContext<[string]>): Promise<ReplyOf<typeof RegisterHost>> {
    assertSubjectNamesHost(RegisterHost.subject, ctx.getArgs()[0], r.hostId);
    return this.hosts.register(r);
  }

  @MessagePattern(GetHost.subject)
  async getHost(r: RequestOf<typeof GetHost>): Promise<ReplyOf<typeof GetHost>> {
    return { host: await this.hosts.get(r.hostId) };
  }

  @MessagePattern(ListHosts.subject)
  async listHosts(r: RequestOf<typeof ListHosts>): Promise<ReplyOf<typeof ListHosts>> {
    const page = await this.hosts.page(r);
    return { hosts: page.items, featureSets: page.featureSets, nextCursor: page.nextCursor };
  }

  @MessagePattern(ListPlacementHosts.subject)
  async listPlacementHosts(r: RequestOf<typeof ListPlacementHosts>): Promise<ReplyOf<typeof ListPlacementHosts>> {
    if (!r.for) return this.placementHosts.page(r);
    // more hosts than a page holds (a cluster of many CPUs): no `unlisted`, and the scheduler reads every page
    const bounded = await this.placementHosts.candidates(r.clusterId, r.for, MAX_PAGE_LIMIT);
    return bounded ? { ...bounded, nextCursor: null } : { hosts: [], featureSets: {}, nextCursor: null };
  }

  @MessagePattern(GetVm.subject)
  async getVm(r: RequestOf<typeof GetVm>): Promise<ReplyOf<typeof GetVm>> {
    return { vm: await this.vms.get(r.vmId) };
  }

  @MessagePattern(ReserveCapacity.subject)
  async reserve(r: RequestOf<typeof ReserveCapacity>): Promise<ReplyOf<typeof ReserveCapacity>> {
    return withLogFields({ migrationId: r.migrationId, vmId: r.vmId, hostId: r.hostId }, async () => {
      const { reservation, verdict, sourceHostId, targetMigrationAddress } = await this.reservations.reserve(r);
      // the agents hear of it before the scheduler hears back, so their entry steps need not ask
      this.notifier.reserved(reservation, sourceHostId, targetMigrationAddress);
      return { reservation, verdict };
    });
  }

  @MessagePattern(GetReservation.subject)
  async getReservation(r: RequestOf<typeof GetReservation>): Promise<ReplyOf<typeof GetReservation>> {
    return this.reservations.get(r.migrationId);
  }

  @MessagePattern(ReleaseCapacity.subject)
  async release(r: RequestOf<typeof ReleaseCapacity>): Promise<ReplyOf<typeof ReleaseCapacity>> {
    return withLogFields({ migrationId: r.migrationId }, async () => {
      const { released, hostIds } = await this.reservations.release(r.migrationId);
      this.notifier.released(r.migrationId, hostIds);
      return { released };
    });
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
