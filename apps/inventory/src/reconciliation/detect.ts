import type { AgentVmState, ReconciliationKind, ReportedVm } from '@flexmig/contracts';

/**
 * Inventory against the agents (docs/reconciliation.md). Pure: the caller reads the records, the
 * hosts' reports and the reservations of migrations in flight, and gets the disagreements.
 *
 * - orphaned: an agent holds a running or paused copy of a VM that inventory has no record of there
 *   (no VM of that id, one that is not running, or recorded on another host that does not run it);
 * - missing: inventory records a running VM on a host whose agent does not hold it, and no agent does;
 * - split-brain: the recorded host and at least one other hold a copy.
 *
 * Never judged: a VM with a reservation (a migration in flight holds copies on source and target); a VM
 * being created (`starting`); copies in state `incoming` (a paused copy waiting for a stream) or
 * `stopped`; hosts that are down or whose last full report does not match their latest digest (their VM
 * set is unknown); and a (VM, host) pair whose report is not at least `settleMs` newer than the VM's
 * record, since a report taken just before a relocation would show the world as it was.
 */

export interface HostReport {
  hostId: string;
  /** Up, and the full report matches the digest of its latest heartbeat. */
  current: boolean;
  reportedAt: Date | null;
  vms: readonly ReportedVm[];
}

export interface RecordedVm {
  id: string;
  hostId: string;
  state: string;
  updatedAt: Date;
}

export interface Detected {
  kind: ReconciliationKind;
  vmId: string;
  hostId: string;
  otherHostIds: string[];
  agentState: AgentVmState | null;
  recordedHostId: string | null;
  recordedState: string | null;
  detail: string;
}

export interface DetectionInput {
  hosts: readonly HostReport[];
  vms: readonly RecordedVm[];
  /** VM ids with a reservation: a migration in flight. */
  migrating: ReadonlySet<string>;
  settleMs: number;
}

export interface Detection {
  findings: Detected[];
  /** Hosts whose report was judged, and those whose VM set is unknown. */
  checked: string[];
  unknown: string[];
}

interface Copy {
  hostId: string;
  state: AgentVmState;
  reportedAt: Date;
}

const holds = (s: AgentVmState) => s === 'running' || s === 'paused';

/** Units of work (a reported copy, a record, a VM held somewhere) in one slice of `detecting`. */
export const DETECT_SLICE = 1_000;

/** What the reconciliation pass decides, in one go: tests, and callers with small inputs. */
export function detect(input: DetectionInput): Detection {
  const steps = detecting(input, Infinity);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The same decision, with `pause` awaited between slices of `slice` units of work: at 10,000 VMs the
 * decision takes several milliseconds, and a service that ran it in one go held every request it was
 * answering for that long (docs/scale.md, "The reconciliation pass in slices").
 */
export async function detectInSlices(input: DetectionInput, pause: () => Promise<unknown>, slice = DETECT_SLICE): Promise<Detection> {
  const steps = detecting(input, slice);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await pause();
  }
}

/** The decision itself, yielding after every `slice` units of work; its result does not depend on `slice`. */
function* detecting(input: DetectionInput, slice: number): Generator<void, Detection, void> {
  let left = slice;
  /** Counts one unit of work; true when it ends a slice. */
  const sliceEnds = () => --left === 0 && ((left = slice), true);
  const checked = input.hosts.filter((h) => h.current && h.reportedAt);
  const unknown = input.hosts.filter((h) => !(h.current && h.reportedAt)).map((h) => h.hostId);
  const judged = new Map(checked.map((h) => [h.hostId, h]));
  const copies = new Map<string, Copy[]>();
  for (const h of checked) {
    for (const v of h.vms) {
      if (sliceEnds()) yield;
      if (!holds(v.state)) continue;
      const list = copies.get(v.vmId) ?? [];
      list.push({ hostId: h.hostId, state: v.state, reportedAt: h.reportedAt! });
      copies.set(v.vmId, list);
    }
  }
  const records = new Map<string, RecordedVm>();
  for (const v of input.vms) {
    if (sliceEnds()) yield;
    records.set(v.id, v);
  }
  const settled = (at: Date, vm: RecordedVm) => at.getTime() - vm.updatedAt.getTime() >= input.settleMs;
  const findings: Detected[] = [];

  for (const [vmId, all] of copies) {
    if (sliceEnds()) yield;
    if (input.migrating.has(vmId)) continue;
    const vm = records.get(vmId);
    if (vm?.state === 'starting') continue;
    const fresh = vm ? all.filter((c) => settled(c.reportedAt, vm)) : all;
    if (vm?.state === 'running') {
      const onRecord = fresh.find((c) => c.hostId === vm.hostId);
      const others = fresh.filter((c) => c.hostId !== vm.hostId);
      if (onRecord && others.length > 0) {
        findings.push({
          kind: 'split-brain',
          vmId,
          hostId: vm.hostId,
          otherHostIds: others.map((c) => c.hostId).sort(),
          agentState: others.some((c) => c.state === 'running') ? 'running' : 'paused',
          recordedHostId: vm.hostId,
          recordedState: vm.state,
          detail: `VM ${vmId} runs on ${vm.hostId} (inventory's record) and also on ${others.map((c) => `${c.hostId} (${c.state})`).join(', ')}`,
        });
        continue;
      }
      for (const c of others) findings.push(orphan(vmId, c, vm));
      continue;
    }
    for (const c of fresh) findings.push(orphan(vmId, c, vm));
  }

  for (const vm of input.vms) {
    if (sliceEnds()) yield;
    if (vm.state !== 'running' || input.migrating.has(vm.id)) continue;
    const host = judged.get(vm.hostId);
    if (!host || !settled(host.reportedAt!, vm)) continue;
    if ((copies.get(vm.id) ?? []).length > 0) continue; // held somewhere: orphaned or split-brain above
    findings.push({
      kind: 'missing',
      vmId: vm.id,
      hostId: vm.hostId,
      otherHostIds: [],
      agentState: null,
      recordedHostId: vm.hostId,
      recordedState: vm.state,
      detail: `inventory records VM ${vm.id} running on ${vm.hostId}, but neither that host's agent nor any other holds it`,
    });
  }
  findings.sort((a, b) => a.kind.localeCompare(b.kind) || a.vmId.localeCompare(b.vmId) || a.hostId.localeCompare(b.hostId));
  return { findings, checked: checked.map((h) => h.hostId).sort(), unknown: unknown.sort() };
}

function orphan(vmId: string, c: Copy, vm: RecordedVm | undefined): Detected {
  const where = !vm ? 'inventory has no VM of that id' : vm.state !== 'running' ? `inventory records it ${vm.state}` : `inventory records it on ${vm.hostId}, which does not hold it`;
  return {
    kind: 'orphaned',
    vmId,
    hostId: c.hostId,
    otherHostIds: [],
    agentState: c.state,
    recordedHostId: vm?.hostId ?? null,
    recordedState: vm?.state ?? null,
    detail: `the agent of ${c.hostId} holds VM ${vmId} (${c.state}), but ${where}`,
  };
}
