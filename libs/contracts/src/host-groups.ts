import type { AutoImcTry } from './http-views';
import type { ClusterImc, ClusterImcPlan, ModeVerification } from './imc';
import { countsOf, cpuName, firstOf, groupsOf, lacksText } from './text';

/**
 * A cluster's CPU views (its hosts' modes, a verification, the plan, auto's tries) as rows per group of
 * hosts that read alike rather than a row per host: a cluster of 1,000 hosts of three CPUs is three rows,
 * each counting its hosts, their states, and naming the first few. The console's clusters page and the
 * CLI's `cluster imc` and `cluster plan` show these (every host: the hosts page, `--hosts`, `-o json`).
 * Pure, and only type imports beside `./text`: the console's bundle takes this file without the schemas.
 */

/** A table's row: its key (what its hosts share; the console's React key) and its cells. */
export interface GroupRow {
  key: string;
  cells: string[];
}

type HostOfCluster = ClusterImc['hosts'][number];

/** How many hosts a row names before "and N more". */
export const NAMED = 5;

/** A group's hosts by id: the first NAMED, and how many more. */
const named = (hosts: readonly { hostId: string }[]) => firstOf(hosts.map((h) => h.hostId), hosts.length, NAMED);

/** The cells every group's row ends with: how many hosts, their states, and the first ones by id. */
export const HOSTS_HEADERS = ['Hosts', 'States', 'Which'];
const hostCells = (hosts: readonly { hostId: string; state?: string }[]) => [
  String(hosts.length),
  countsOf(hosts.flatMap((h) => (h.state === undefined ? [] : [h.state]))),
  named(hosts),
];

/** The hosts of a cluster by CPU (vendor, model and the highest mode it passes), in the answer's order. */
export const CPU_HEADERS = ['CPU', 'Highest mode', ...HOSTS_HEADERS];
export function cpuRows(hosts: readonly HostOfCluster[]): GroupRow[] {
  return groupsOf(hosts, (h) => JSON.stringify([h.vendor, h.modelName, h.maxImcMode])).map(({ key, items }) => ({
    key,
    cells: [cpuName(items[0]!), items[0]!.maxImcMode ?? '(none)', ...hostCells(items)],
  }));
}

/**
 * The plan's hosts by their own highest mode and the cluster's mode without any one of them; each host's
 * state is the cluster's IMC view's (`unknown` for a host that view does not name: registered since), none
 * while that view has not loaded (`hosts` undefined).
 */
export const PLAN_HEADERS = ['Own highest mode', 'Cluster mode without any one of them', ...HOSTS_HEADERS];
export function planRows(plan: ClusterImcPlan, hosts: readonly HostOfCluster[] | undefined): GroupRow[] {
  const without = new Map(plan.withoutHost.map((w) => [w.hostId, w.mode ?? '(none)']));
  const state = hosts && new Map(hosts.map((h) => [h.hostId, h.state]));
  const rows = plan.hostModes.map((h) => ({ hostId: h.hostId, own: h.mode ?? '(none)', without: without.get(h.hostId) ?? '', state: state && (state.get(h.hostId) ?? 'unknown') }));
  return groupsOf(rows, (r) => JSON.stringify([r.own, r.without])).map(({ key, items }) => ({ key, cells: [items[0]!.own, items[0]!.without, ...hostCells(items)] }));
}

/** What a host lacks for a mode: the first eight features by name (a newer mode adds dozens), and how many more. */
const lacks = (h: { missing: string[]; vendorMismatch: boolean }) => lacksText(h, 8);

const whyNot = (h: ModeVerification['hosts'][number]) => (h.pass ? '' : lacks(h) || h.reason);

/** A verification's hosts by verdict: those that pass, and those that fail for the same reason. */
export const VERIFICATION_HEADERS = ['Pass', 'Why not', 'Hosts', 'Which'];
export function verificationRows(v: ModeVerification): GroupRow[] {
  return groupsOf(v.hosts, (h) => JSON.stringify([h.pass, whyNot(h)])).map(({ key, items }) => ({
    key,
    cells: [items[0]!.pass ? 'yes' : 'no', whyNot(items[0]!), String(items.length), named(items)],
  }));
}

/** A mode auto tried and not every host passed: its failing hosts by what they lack, one line each. */
export function failingLines(t: AutoImcTry): { key: string; line: string }[] {
  return groupsOf(t.failing, (h) => lacks(h)).map(({ key, items }) => ({ key, line: `${named(items)}: ${key}` }));
}
