import { type Host, PASSED_OVER_LISTED, PLACEMENT_RULES, type PlacementRule, type Verdict } from '@flexmig/contracts';

/**
 * What placement reads of a host: `inventory.host.placement-list`'s hosts and full `Host`s both have it
 * (the CPU is asked about apart, as a verdict per host).
 */
export type PlaceableHost = Pick<
  Host,
  'id' | 'clusterId' | 'state' | 'maintenance' | 'memoryMiB' | 'vcpus' | 'allocatedMemoryMiB' | 'allocatedVcpus' | 'capacityMemoryMiB' | 'capacityVcpus' | 'cpuAllocationRatio' | 'memoryAllocationRatio'
>;

/**
 * Placement (issue 4, item 6): with no target named, choose the host a VM moves to. Pure: everything it
 * needs is an input, so it is tested without NATS or PostgreSQL (STYLE.md 5); `PlacementService` gathers
 * the inputs.
 *
 * A host is eligible when it passes every rule below, checked in this order (the first one it fails is
 * the reason it was passed over):
 *   1. it is in the VM's cluster (live migration stays within a cluster);
 *   2. it is not the VM's source host;
 *   3. it is `up`;
 *   4. it is not in maintenance;
 *   5. it has enough free memory, then 6. enough free vCPUs: free = total − allocated − promised, where
 *      `allocated` already holds the reservations of migrations past step 1, and `promised` is what
 *      admitted migrations that have not reserved yet (queued, or not past step 1) will take;
 *   7. its CPU can run the VM's baseline (the cpu-compat verdict; a refusal names the missing features).
 * The CPU rule comes last only because it needs a verdict per host, which is asked for the hosts that
 * pass the cheap rules alone (see {@link cheapRuleFailure}).
 *
 * Least loaded, among the eligible hosts: the lowest memory utilisation after placement
 * ((allocated + promised + the VM) / total), since memory is what a host runs out of first and what a
 * migration copies; ties go to the host with fewer active inbound migrations (each one shares its
 * network and its agent), then to the lowest host id, so that the choice is deterministic.
 */

export interface PlacementVm {
  id: string;
  name?: string;
  clusterId: string;
  /** The source host. */
  hostId: string;
  memoryMiB: number;
  vcpus: number;
  cpuBaseline: string;
}

/** What admitted, unfinished migrations bring to a host. */
export interface InboundLoad {
  /** Active (not terminal, queued included) migrations whose target is the host. */
  migrations: number;
  /** Memory and vCPUs of those that hold no reservation yet (not past step 1): promised, not yet in `allocated`. */
  promisedMemoryMiB: number;
  promisedVcpus: number;
}

export const noInboundLoad: InboundLoad = { migrations: 0, promisedMemoryMiB: 0, promisedVcpus: 0 };

export interface PlacementInput {
  vm: PlacementVm;
  /** The hosts of the VM's cluster (the source among them is fine: it is passed over). */
  hosts: readonly PlaceableHost[];
  /** cpu-compat's verdict per host id, for (at least) the hosts that pass the cheap rules. */
  verdicts: Readonly<Record<string, Verdict | undefined>>;
  /** Per host id; a missing host has none. */
  inbound: Readonly<Record<string, Partial<InboundLoad> | undefined>>;
  /**
   * The cluster's hosts not in `hosts`, only counted, by the rule that passes them over (a bounded read of
   * the cluster: PlacementService). Counted among the hosts passed over; none of them can be chosen.
   */
  unlisted?: Readonly<Partial<Record<PlacementRule, number>>>;
}

export interface PassedOver {
  hostId: string;
  reason: string;
}

export interface Placement {
  chosen: string | null;
  reason: string;
  /** At most PASSED_OVER_LISTED: the eligible hosts ranked closest after the chosen one, then those a rule ruled out, by host id. */
  passedOver: PassedOver[];
  /** Every host passed over, listed or not. */
  passedOverCount: number;
  /** How many hosts each rule passed over (`less-suitable`: eligible, ranked after the chosen one). */
  passedOverByRule: Partial<Record<PlacementRule, number>>;
}

const loadOf = (input: PlacementInput, hostId: string): InboundLoad => ({ ...noInboundLoad, ...input.inbound[hostId] });

// ---- the rules: each a small named function that answers why a host cannot take the VM, or null (STYLE.md 7) ----

export function inOtherCluster(vm: PlacementVm, host: PlaceableHost): string | null {
  return host.clusterId === vm.clusterId ? null : `it is in cluster ${host.clusterId}, not in the VM's cluster ${vm.clusterId}`;
}

export function isSource(vm: PlacementVm, host: PlaceableHost): string | null {
  return host.id === vm.hostId ? 'it is the VM\'s source host' : null;
}

export function isDown(host: PlaceableHost): string | null {
  return host.state === 'up' ? null : 'it is down (its agent stopped heartbeating)';
}

export function inMaintenance(host: PlaceableHost): string | null {
  return host.maintenance ? 'it is in maintenance and takes no new VMs' : null;
}

/** `(16 × 4)`: how an overcommitted capacity came about; nothing when the ratio is 1. */
const overcommitNote = (size: number, ratio: number) => (ratio === 1 ? '' : ` (${size} × ${ratio})`);

const promisedNote = (amount: number, unit: string, load: InboundLoad) =>
  amount > 0 ? ` (${amount} ${unit} of it promised to ${load.migrations} incoming migration(s) not yet started)` : '';

export function lacksMemory(vm: PlacementVm, host: PlaceableHost, load: InboundLoad): string | null {
  const free = host.capacityMemoryMiB - host.allocatedMemoryMiB - load.promisedMemoryMiB;
  if (free >= vm.memoryMiB) return null;
  return (
    `not enough free memory: ${Math.max(free, 0)} MiB free of ${host.capacityMemoryMiB} MiB${overcommitNote(host.memoryMiB, host.memoryAllocationRatio)}, ${vm.memoryMiB} MiB needed` +
    promisedNote(load.promisedMemoryMiB, 'MiB', load)
  );
}

export function lacksVcpus(vm: PlacementVm, host: PlaceableHost, load: InboundLoad): string | null {
  const free = host.capacityVcpus - host.allocatedVcpus - load.promisedVcpus;
  if (free >= vm.vcpus) return null;
  return `not enough free vCPUs: ${Math.max(free, 0)} free of ${host.capacityVcpus}${overcommitNote(host.vcpus, host.cpuAllocationRatio)}, ${vm.vcpus} needed` + promisedNote(load.promisedVcpus, 'vCPUs', load);
}

export function cpuIncompatible(vm: PlacementVm, verdict: Verdict | undefined): string | null {
  if (!verdict) return `no CPU verdict for baseline ${vm.cpuBaseline} was available for it`;
  if (verdict.compatible) return null;
  const unnamed = verdict.missing.filter((f) => !verdict.reason.includes(f));
  return `its CPU cannot run the VM's baseline ${verdict.baseline}: ${verdict.reason}` + (unnamed.length ? ` (missing: ${verdict.missing.join(', ')})` : '');
}

/** The rules other than the CPU's, in the order they are checked, each under its name in the API's counts. */
const cheapRules: readonly [PlacementRule, (vm: PlacementVm, host: PlaceableHost, load: InboundLoad) => string | null][] = [
  ['other-cluster', inOtherCluster],
  ['source', isSource],
  ['down', (_vm, host) => isDown(host)],
  ['maintenance', (_vm, host) => inMaintenance(host)],
  ['memory', lacksMemory],
  ['vcpus', lacksVcpus],
];

/** The first rule other than the CPU's that the host fails, with why; null when only the CPU verdict remains to ask. */
function firstCheapFailure(vm: PlacementVm, host: PlaceableHost, load: InboundLoad): { rule: PlacementRule; reason: string } | null {
  for (const [rule, check] of cheapRules) {
    const reason = check(vm, host, load);
    if (reason !== null) return { rule, reason };
  }
  return null;
}

/** The CPU rule under its name in the API's counts: why the verdict rules the host out, or null. */
function cpuFailure(vm: PlacementVm, verdict: Verdict | undefined): { rule: PlacementRule; reason: string } | null {
  const reason = cpuIncompatible(vm, verdict);
  return reason === null ? null : { rule: 'cpu', reason };
}

/** The first rule, other than the CPU's, that the host fails; null when only the CPU verdict remains to ask. */
export function cheapRuleFailure(vm: PlacementVm, host: PlaceableHost, load: InboundLoad = noInboundLoad): string | null {
  return firstCheapFailure(vm, host, load)?.reason ?? null;
}

// ---- least loaded ----

interface Candidate {
  host: PlaceableHost;
  load: InboundLoad;
  /** Memory held after placement, MiB. */
  usedAfter: number;
}

const utilisation = (c: Candidate) => c.usedAfter / c.host.capacityMemoryMiB;
const percent = (c: Candidate) => `${(utilisation(c) * 100).toFixed(1)}%`;

/** Exact comparison of used/total ratios (integers: no rounding decides a tie). */
const compareUtilisation = (a: Candidate, b: Candidate) => a.usedAfter * b.host.capacityMemoryMiB - b.usedAfter * a.host.capacityMemoryMiB;

type TieBreak = 'utilisation' | 'inbound' | 'host id';

function compareCandidates(a: Candidate, b: Candidate): { order: number; decidedBy: TieBreak } {
  const byUtilisation = compareUtilisation(a, b);
  if (byUtilisation !== 0) return { order: byUtilisation, decidedBy: 'utilisation' };
  const byInbound = a.load.migrations - b.load.migrations;
  if (byInbound !== 0) return { order: byInbound, decidedBy: 'inbound' };
  return { order: a.host.id < b.host.id ? -1 : a.host.id > b.host.id ? 1 : 0, decidedBy: 'host id' };
}

const describeLoad = (c: Candidate) =>
  `memory ${percent(c)} used after placement (${c.usedAfter} of ${c.host.capacityMemoryMiB} MiB), ${c.load.migrations} active inbound migration(s)`;

function whyNotChosen(loser: Candidate, winner: Candidate): string {
  const { decidedBy } = compareCandidates(winner, loser);
  switch (decidedBy) {
    case 'utilisation':
      return `eligible, but more loaded: memory ${percent(loser)} used after placement against ${percent(winner)} on ${winner.host.id}`;
    case 'inbound':
      return `eligible and as loaded as ${winner.host.id} (memory ${percent(loser)} after placement), but with more active inbound migrations (${loser.load.migrations} against ${winner.load.migrations})`;
    case 'host id':
      return `eligible and tied with ${winner.host.id} (memory ${percent(loser)} after placement, ${loser.load.migrations} inbound migration(s)); the tie goes to the lower host id`;
    default: {
      const never: never = decidedBy;
      return never;
    }
  }
}

/**
 * Chooses the target host for a VM, explaining the choice and why the other hosts were passed over: each
 * rule's count, and at most PASSED_OVER_LISTED hosts one by one (a placement's record and the API's answer
 * stay the same size at 1,000 hosts as at 20).
 */
export function choosePlacement(input: PlacementInput): Placement {
  const { vm } = input;
  const vmName = vm.name ?? vm.id;
  const hosts = [...input.hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const ruledOut: (PassedOver & { rule: PlacementRule })[] = [];
  const candidates: Candidate[] = [];
  for (const host of hosts) {
    const load = loadOf(input, host.id);
    const failed = firstCheapFailure(vm, host, load) ?? cpuFailure(vm, input.verdicts[host.id]);
    if (failed) ruledOut.push({ hostId: host.id, ...failed });
    else candidates.push({ host, load, usedAfter: host.allocatedMemoryMiB + load.promisedMemoryMiB + vm.memoryMiB });
  }
  const byRule: Partial<Record<PlacementRule, number>> = {};
  for (const r of ruledOut) byRule[r.rule] = (byRule[r.rule] ?? 0) + 1;
  let unlisted = 0;
  for (const [rule, n] of Object.entries(input.unlisted ?? {}) as [PlacementRule, number][]) {
    if (n > 0) byRule[rule] = (byRule[rule] ?? 0) + n;
    unlisted += n;
  }
  const eligibleUnlisted = input.unlisted?.['less-suitable'] ?? 0;

  if (candidates.length === 0) {
    const passedOverCount = ruledOut.length + unlisted;
    const listed = ruledOut.slice(0, PASSED_OVER_LISTED).map(({ hostId, reason }) => ({ hostId, reason }));
    const more = passedOverCount - listed.length;
    const reason =
      passedOverCount === 0
        ? `no host can take VM ${vmName}: its cluster has no host`
        : `no host can take VM ${vmName}: ` +
          (more > 0 ? `${passedOverCount} hosts passed over (${countsText(byRule)}); ` : '') +
          listed.map((p) => `${p.hostId}: ${p.reason}`).join('; ') +
          (more > 0 ? `${listed.length > 0 ? '; ' : ''}and ${more} more` : '');
    return { chosen: null, reason, passedOver: listed, passedOverCount, passedOverByRule: byRule };
  }

  const ranked = [...candidates].sort((a, b) => compareCandidates(a, b).order);
  const [winner, runnerUp] = ranked;
  let reason = `${winner.host.id} is the least loaded of ${candidates.length + eligibleUnlisted} eligible host(s) (same cluster, up, not in maintenance, CPU compatible with ${vm.cpuBaseline}, room for ${vm.memoryMiB} MiB and ${vm.vcpus} vCPUs): ${describeLoad(winner)}`;
  if (runnerUp) {
    const decidedBy = compareCandidates(winner, runnerUp).decidedBy;
    if (decidedBy === 'inbound') reason += `; tied on memory with ${runnerUp.host.id}, it has fewer active inbound migrations`;
    if (decidedBy === 'host id') reason += `; tied with ${runnerUp.host.id} on memory and inbound migrations, the lower host id wins`;
  }
  const losers = ranked.slice(1);
  // eligible hosts ranked after the winner: the listed ones, beside the unlisted ones counted above
  if (losers.length > 0) byRule['less-suitable'] = (byRule['less-suitable'] ?? 0) + losers.length;
  // the closest runners-up first (why not them is what a choice has to answer), then the ruled out; only the listed ones are described
  const passedOver: PassedOver[] = losers.slice(0, PASSED_OVER_LISTED).map((loser) => ({ hostId: loser.host.id, reason: whyNotChosen(loser, winner) }));
  for (const r of ruledOut.slice(0, PASSED_OVER_LISTED - passedOver.length)) passedOver.push({ hostId: r.hostId, reason: r.reason });
  return { chosen: winner.host.id, reason, passedOver, passedOverCount: losers.length + ruledOut.length + unlisted, passedOverByRule: byRule };
}

/** `memory: 600, cpu: 400`, in the order the rules are checked. */
function countsText(byRule: Partial<Record<PlacementRule, number>>): string {
  return PLACEMENT_RULES.filter((r) => byRule[r]).map((r) => `${r}: ${byRule[r]}`).join(', ');
}
