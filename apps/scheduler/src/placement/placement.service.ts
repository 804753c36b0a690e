import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  CpuVerdict,
  ErrorCode,
  FlexmigError,
  ListPlacementHosts,
  MAX_PAGE_LIMIT,
  PASSED_OVER_LISTED,
  PlacementHost,
  type PlacementRule,
  type PlacementUnlisted,
  TERMINAL_MIGRATION_STATES,
  Verdict,
  VerdictCache,
  type VerdictQuestion,
  Vm,
} from '@flexmig/contracts';
import { NatsBus, requestAllPages } from '@flexmig/messaging';
import { FreshReads } from '@flexmig/timing';
import { cheapRuleFailure, choosePlacement, InboundLoad, noInboundLoad, Placement, PlacementVm } from './placement';
import { PlacementsInFlight } from './placements-in-flight';

/**
 * The oldest read of a cluster's hosts a placement that accepts an earlier read (an evacuation's) is given.
 * The chosen host is checked again after placement (up, not in maintenance: prechecks.ts) and its room at
 * step 1 (inventory's reservation), so an older read can cost a retry or a failed step 1, never an overcommit.
 */
export const HOSTS_READ_MAX_AGE_MS = 1_000;

/**
 * The hosts of each CPU a bounded read lists among those that pass every rule inventory checks: one more
 * than the runners-up a placement names, so that those named are the ones a read of every host would name.
 */
export const CANDIDATES_PER_CPU = PASSED_OVER_LISTED + 1;

/** A bounded read's unlisted hosts as choosePlacement counts them: by inventory's rule, and those passing it by their CPU's verdict. */
export function unlistedByRule(u: PlacementUnlisted, verdictOf: (p: PlacementUnlisted['passing'][number]) => Verdict): Partial<Record<PlacementRule, number>> {
  const byRule: Partial<Record<PlacementRule, number>> = { ...u.byRule };
  for (const p of u.passing) {
    const rule: PlacementRule = verdictOf(p).compatible ? 'less-suitable' : 'cpu';
    byRule[rule] = (byRule[rule] ?? 0) + p.count;
  }
  return byRule;
}

/** A placement that found a host (what `place` answers; the view's `placement` field has this shape). */
export type ChosenPlacement = Placement & { chosen: string };

/** A cluster's hosts as placement weighs them, and each CPU feature list they name, by its digest; shared by the placements that asked together, so read only. */
interface ClusterHosts {
  readonly hosts: readonly PlacementHost[];
  readonly featureSets: Readonly<Record<string, string[]>>;
}

/**
 * Gathers what placement needs and asks the pure {@link choosePlacement}: the cluster's hosts worth weighing
 * for the VM, with the others counted (inventory's `inventory.host.placement-list` with `for`; an inventory
 * that does not bound it is read whole, a page of 1,000 hosts per request, and placements of the same
 * cluster at the same time share one read that started after each of them asked: {@link FreshReads}),
 * a CPU verdict per candidate host (cpu-compat, once per distinct CPU: VerdictCache), and the load of unfinished migrations per
 * target host (this scheduler's own `migrations` table, read only).
 */
@Injectable()
export class PlacementService {
  private readonly verdicts: VerdictCache;
  /**
   * An evacuation of 10 hosts places 10 VMs at a time in one cluster; each read 1,000 hosts on its own
   * (about 250 KB, parsed by inventory and by this scheduler), and those reads, not the migrations, were
   * most of the time before its last migration was asked for (docs/scale.md).
   */
  private readonly clusterHosts: FreshReads<string, ClusterHosts>;
  /** The hosts chosen for migrations this replica is still admitting, counted as inbound by every placement. */
  private readonly inFlight = new PlacementsInFlight();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
  ) {
    this.verdicts = new VerdictCache((q) => this.bus.request(CpuVerdict, q));
    this.clusterHosts = new FreshReads((clusterId) => this.readClusterHosts(clusterId));
  }

  /**
   * Chooses the target for a VM; throws INSUFFICIENT_CAPACITY when none is eligible, with the hosts passed
   * over counted by rule and the first 25 named with why (choosePlacement). An unreachable inventory or cpu-compat surfaces as their own (retryable)
   * error, not as "no host".
   *
   * The hosts are read for this VM, bounded (`readCandidates`: a few dozen hosts whatever the cluster's
   * size, read after the inbound load). Only when inventory does not bound the read is every host read:
   * then `hostsReadSince` (this process's clock) says that a read of the cluster's hosts that started then
   * or later will do, but never one older than HOSTS_READ_MAX_AGE_MS. An evacuation passes the moment its
   * host went into maintenance, so that its placements, one after another, share one read of the hosts
   * instead of one each. Without it, the read starts after this call.
   *
   * `hold`: the caller is admitting a migration to the chosen host. Until `release(vm.id)`, every placement
   * of this replica counts it there as an inbound migration (PlacementsInFlight), so that placements asked
   * together spread instead of all choosing the host that was least loaded when they read.
   */
  async place(vm: Vm, opts: { hostsReadSince?: number; hold?: boolean } = {}): Promise<ChosenPlacement> {
    const admitted = await this.inboundLoad(vm.clusterId);
    const bounded = await this.readCandidates(vm, this.inFlight.addedTo(vm, admitted));
    let placement = bounded ? await this.choose(vm, bounded, admitted, opts.hold) : null;
    // a bounded read that chose no host though it counted eligible ones (hosts changed between the reads of
    // one statement cannot do it; an inventory that misjudged would): every host, as without one
    if (!placement || (placement.chosen === null && (placement.passedOverByRule['less-suitable'] ?? 0) > 0)) {
      const since = opts.hostsReadSince === undefined ? undefined : Math.max(opts.hostsReadSince, Date.now() - HOSTS_READ_MAX_AGE_MS);
      placement = await this.choose(vm, await this.clusterHosts.get(vm.clusterId, since), admitted, opts.hold);
    }
    if (placement.chosen === null) {
      throw new FlexmigError(ErrorCode.InsufficientCapacity, placement.reason, {
        vmId: vm.id,
        passedOver: placement.passedOver,
        passedOverCount: placement.passedOverCount,
        passedOverByRule: placement.passedOverByRule,
      });
    }
    return { ...placement, chosen: placement.chosen };
  }

  /** The admission that placed `vmId` with `hold` ended: its host no longer counts the VM as being admitted. */
  release(vmId: string): void {
    this.inFlight.release(vmId);
  }

  /**
   * The hosts worth weighing for this VM, and the count of the others (`inventory.host.placement-list` with
   * `for`): each CPU's CANDIDATES_PER_CPU best hosts that pass the rules inventory checks, every host this
   * scheduler has inbound migrations to, and the hosts a placement may name with why (the first
   * PASSED_OVER_LISTED by id failing a rule, and of each CPU passing them). The same choice, counts and
   * named hosts as a read of every host, at the cost of a few dozen hosts at any cluster size. null: read
   * every host (an older inventory, a cluster of many CPUs, more inbound targets than one request names).
   */
  private async readCandidates(vm: Vm, inbound: Record<string, InboundLoad>): Promise<ClusterHosts & { unlisted: PlacementUnlisted } | null> {
    const include = Object.keys(inbound);
    if (include.length > MAX_PAGE_LIMIT) return null;
    const r = await this.bus.request(ListPlacementHosts, {
      clusterId: vm.clusterId,
      limit: MAX_PAGE_LIMIT,
      for: { memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, sourceHostId: vm.hostId, include, perCpu: CANDIDATES_PER_CPU, named: PASSED_OVER_LISTED },
    });
    return r.unlisted ? { hosts: r.hosts, featureSets: r.featureSets, unlisted: r.unlisted } : null;
  }

  /**
   * Asks the verdicts (one per distinct CPU of the hosts that pass every other rule) and chooses among `read`'s
   * hosts, with `admitted` (the inbound load of admitted migrations) and the holds of placements in flight as
   * they are when it chooses; with `hold`, the chosen host is held in the same turn, so that no other
   * placement of this replica chooses without counting it.
   */
  private async choose(vm: Vm, read: ClusterHosts & { unlisted?: PlacementUnlisted }, admitted: Record<string, InboundLoad>, hold = false): Promise<Placement> {
    const { hosts, featureSets } = read;
    const target: PlacementVm = vm;
    // a verdict only for the hosts that pass every other rule: the others are passed over anyway (holds
    // taken while the verdicts are asked only add load, so these are still every host that can pass)
    const before = this.inFlight.addedTo(vm, admitted);
    const candidates = hosts.filter((h) => cheapRuleFailure(target, h, before[h.id] ?? noInboundLoad) === null);
    // a host-passthrough VM (IMC off) may only move to a host with the features it started with
    const vmFeatures = vm.cpuFeatures ? { vmFeatures: vm.cpuFeatures } : {};
    const keyOf = VerdictCache.keyBySet(vm.cpuBaseline, vm.cpuFeatures);
    // one verdict per distinct CPU (vendor and feature set's digest), not a promise per host: a cluster of
    // 1,000 hosts has a handful of CPUs; the CPUs of unlisted hosts that pass the other rules too
    const asked = [...candidates.map((h) => ({ vendor: h.cpu.vendor, featureSet: h.cpu.featureSet, hostId: h.id as string | undefined })), ...(read.unlisted?.passing ?? []).map((p) => ({ ...p, hostId: undefined }))];
    const questions = new Map<string, VerdictQuestion>();
    for (const a of asked) {
      const key = keyOf(a.vendor, a.featureSet);
      if (questions.has(key)) continue;
      const features = featureSets[a.featureSet];
      if (!features) throw new FlexmigError(ErrorCode.Internal, `inventory named CPU feature set ${a.featureSet}${a.hostId ? ` of host ${a.hostId}` : ''} without its list`, a.hostId ? { hostId: a.hostId } : undefined);
      questions.set(key, { baseline: vm.cpuBaseline, target: { vendor: a.vendor, features }, ...vmFeatures });
    }
    const byKey = new Map(await Promise.all([...questions].map(async ([key, q]) => [key, await this.verdicts.verdict(q, key)] as const)));
    const verdicts: Record<string, Verdict> = {};
    for (const h of candidates) verdicts[h.id] = byKey.get(keyOf(h.cpu.vendor, h.cpu.featureSet))!;
    const inbound = this.inFlight.addedTo(vm, admitted);
    const placement = choosePlacement({ vm: target, hosts, verdicts, inbound, ...(read.unlisted ? { unlisted: unlistedByRule(read.unlisted, (p) => byKey.get(keyOf(p.vendor, p.featureSet))!) } : {}) });
    if (hold && placement.chosen !== null) this.inFlight.hold(vm, placement.chosen);
    return placement;
  }

  private async readClusterHosts(clusterId: string): Promise<ClusterHosts> {
    // the cluster's hosts as placement weighs them: each CPU feature list once, under the digest its hosts name
    const featureSets: Record<string, string[]> = {};
    const hosts = await requestAllPages(this.bus, ListPlacementHosts, { clusterId }, (r) => (Object.assign(featureSets, r.featureSets), r.hosts), { limit: MAX_PAGE_LIMIT });
    return { hosts, featureSets };
  }

  /**
   * Per target host: the unfinished migrations heading to it (queued ones included), and the memory and
   * vCPUs of those that hold no reservation yet (step 1 not completed), which inventory's `allocated`
   * does not show. A migration in step 1 may have reserved already: counting it again errs on the side
   * of room, never of overcommit.
   */
  async inboundLoad(clusterId: string): Promise<Record<string, InboundLoad>> {
    const rows: { target_host_id: string; migrations: number; memory: number; vcpus: number }[] = await this.db.query(
      `SELECT target_host_id,
              count(*)::int AS migrations,
              coalesce(sum((vm->>'memoryMiB')::int) FILTER (WHERE unreserved), 0)::int AS memory,
              coalesce(sum((vm->>'vcpus')::int) FILTER (WHERE unreserved), 0)::int AS vcpus
         FROM (SELECT target_host_id, vm,
                      coalesce(saga->'steps'->0->>'status', 'pending') IN ('pending', 'running') AS unreserved
                 FROM migrations
                WHERE cluster_id = $1 AND NOT (state = ANY($2))) active
        GROUP BY target_host_id`,
      [clusterId, [...TERMINAL_MIGRATION_STATES]],
    );
    return Object.fromEntries(rows.map((r) => [r.target_host_id, { migrations: r.migrations, promisedMemoryMiB: r.memory, promisedVcpus: r.vcpus }]));
  }
}
