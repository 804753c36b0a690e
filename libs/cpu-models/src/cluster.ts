import { Baseline, BaselineIndex, Bits, isSubset, ladderOf, newBits, noLadderReason, rankOf, Vendor, vendorLadders, WORDS } from './catalog';
import { bestMode, ClusterHost, HostCpu, hostCpusOf } from './evaluate';

export interface ClusterModeResult {
  /** Highest IMC mode every host supports, or null (no hosts, mixed vendors, no ladder, or no common mode). */
  mode: string | null;
  vendor: Vendor | null;
  reason: string;
}

export interface ClusterPlan extends ClusterModeResult {
  /** Each host's own highest mode. */
  hostModes: { hostId: string; mode: string | null }[];
  /**
   * The hosts that hold the cluster down: those whose own highest mode is the cluster mode, plus those
   * without which the cluster mode would change (e.g. the only host lacking TSX, or the one AMD host in an
   * Intel cluster).
   */
  holdingDown: string[];
  /** The cluster mode if that host left (input order). */
  withoutHost: { hostId: string; mode: string | null }[];
}

interface Prepared {
  id: string;
  cpu: HostCpu;
}

function decide(hostCount: number, vendors: Map<Vendor, number>, bits: Bits | null): ClusterModeResult {
  if (hostCount === 0 || bits === null) return { mode: null, vendor: null, reason: 'no hosts' };
  const present = [...vendors].filter(([, n]) => n > 0).map(([v]) => v);
  if (present.length > 1) {
    return { mode: null, vendor: null, reason: `mixed vendors (${present.sort().join(', ')}): a VM cannot migrate between vendors` };
  }
  const vendor = present[0];
  const ladderNames = vendorLadders[vendor];
  if (ladderNames.length === 0) return { mode: null, vendor, reason: noLadderReason(vendor) };
  const m = bestMode(vendor, bits);
  if (!m) return { mode: null, vendor, reason: `the hosts share no ${vendor} mode (not even ${ladderOf[ladderNames[0]][0].baseline.name})` };
  return { mode: m.baseline.name, vendor, reason: `${m.baseline.name} is the newest ${vendor} mode whose features every host has` };
}

function prepare(hosts: readonly ClusterHost[]): Prepared[] {
  const cpus = hostCpusOf(hosts);
  return hosts.map((h, i) => ({ id: h.id, cpu: cpus[i]! }));
}

function and(a: Bits, b: Bits): Bits {
  const out = newBits();
  for (let w = 0; w < WORDS; w++) out[w] = a[w] & b[w];
  return out;
}

function vendorCounts(hosts: readonly Prepared[]): Map<Vendor, number> {
  const counts = new Map<Vendor, number>();
  for (const h of hosts) counts.set(h.cpu.vendor, (counts.get(h.cpu.vendor) ?? 0) + 1);
  return counts;
}

/** The cluster's mode: the highest mode of the hosts' common ladder that every host supports. */
export function clusterMode(hosts: readonly ClusterHost[]): ClusterModeResult {
  const prepared = prepare(hosts);
  const common = prepared.reduce<Bits | null>((acc, h) => (acc === null ? h.cpu.effective : and(acc, h.cpu.effective)), null);
  return decide(prepared.length, vendorCounts(prepared), common);
}

/**
 * The cluster mode, which hosts hold it down, and what it would be without each host (one old host
 * lowers the whole cluster). Linear in the number of hosts (prefix/suffix intersections).
 */
export function planCluster(hosts: readonly ClusterHost[]): ClusterPlan {
  const prepared = prepare(hosts);
  const n = prepared.length;
  const counts = vendorCounts(prepared);
  const prefix: Bits[] = [];
  const suffix: Bits[] = new Array(n);
  prepared.forEach((h, i) => prefix.push(i === 0 ? h.cpu.effective : and(prefix[i - 1], h.cpu.effective)));
  for (let i = n - 1; i >= 0; i--) suffix[i] = i === n - 1 ? prepared[i].cpu.effective : and(suffix[i + 1], prepared[i].cpu.effective);
  const result = decide(n, counts, n > 0 ? prefix[n - 1] : null);

  const hostModes = prepared.map((h) => {
    const own = decide(1, new Map([[h.cpu.vendor, 1]]), h.cpu.effective);
    return { hostId: h.id, mode: own.mode };
  });
  const withoutHost = prepared.map((h, i) => {
    const rest = prepared.length - 1;
    let bits: Bits | null = null;
    if (rest > 0) bits = i === 0 ? suffix[1] : i === n - 1 ? prefix[n - 2] : and(prefix[i - 1], suffix[i + 1]);
    const c = new Map(counts);
    c.set(h.cpu.vendor, c.get(h.cpu.vendor)! - 1);
    return { hostId: h.id, mode: decide(rest, c, bits).mode };
  });
  const holdingDown = prepared
    .filter((_, i) => hostModes[i].mode === result.mode || withoutHost[i].mode !== result.mode)
    .map((h) => h.id);
  return { ...result, hostModes, holdingDown, withoutHost };
}

/**
 * A vendor's IMC modes in the order to try them, highest first (what `auto` walks): the main ladder by
 * generation (TSX above -noTSX), with each mode of a further ladder (Intel's `intel-ecore`) placed just
 * above the highest main-ladder mode it strictly contains, so the first mode every host passes is the one
 * {@link bestMode} picks for them. Empty for a vendor without a ladder.
 */
export function modesHighestFirst(vendor: Vendor): Baseline[] {
  const [main, ...others] = vendorLadders[vendor].map((n) => ladderOf[n]);
  if (!main) return [];
  const byRank = (l: readonly BaselineIndex[]) => [...l].sort((a, b) => rankOf(b.baseline) - rankOf(a.baseline));
  const out: BaselineIndex[] = byRank(main);
  for (const ladder of others) {
    for (const m of byRank(ladder)) {
      const below = out.findIndex((x) => x.baseline.ladder === main[0].baseline.ladder && isSubset(x.bits, m.bits) && !isSubset(m.bits, x.bits));
      out.splice(below === -1 ? out.length : below, 0, m);
    }
  }
  return out.map((m) => m.baseline);
}
