import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import type { AgentVmState, ReportedVm } from '@flexmig/contracts';
import { detect, detectInSlices, DetectionInput, HostReport, RecordedVm } from './detect';

const t0 = new Date('2026-11-30T12:00:00Z');
const later = new Date(t0.getTime() + 10_000);
const settleMs = 2_000;

const host = (hostId: string, vms: ReportedVm[], o: Partial<HostReport> = {}): HostReport => ({ hostId, current: true, reportedAt: later, vms, ...o });
const record = (id: string, hostId: string, state = 'running', updatedAt = t0): RecordedVm => ({ id, hostId, state, updatedAt });
const run = (o: Partial<DetectionInput>) => detect({ hosts: [], vms: [], migrating: new Set(), settleMs, ...o });
const kinds = (o: Partial<DetectionInput>) => run(o).findings.map((f) => [f.kind, f.vmId, f.hostId]);

describe('reconciliation: inventory against what the agents report', () => {
  const vm = randomUUID();

  it('given a recorded VM that its host runs and nobody else, then nothing is reported', () => {
    expect(kinds({ hosts: [host('a', [{ vmId: vm, state: 'running' }]), host('b', [])], vms: [record(vm, 'a')] })).toEqual([]);
  });

  it('given a recorded running VM that no agent holds, then it is missing on its recorded host', () => {
    const r = run({ hosts: [host('a', []), host('b', [])], vms: [record(vm, 'a')] });
    expect(r.findings).toEqual([expect.objectContaining({ kind: 'missing', vmId: vm, hostId: 'a', recordedHostId: 'a', agentState: null })]);
    expect(r.checked).toEqual(['a', 'b']);
  });

  it('given a VM an agent runs that inventory has no record of, then it is orphaned on that host', () => {
    const r = run({ hosts: [host('a', [{ vmId: vm, state: 'running' }])], vms: [] });
    expect(r.findings).toEqual([expect.objectContaining({ kind: 'orphaned', vmId: vm, hostId: 'a', recordedHostId: null, agentState: 'running' })]);
  });

  it('given a VM held on its recorded host and on another, then one split brain on the record naming the other copy', () => {
    const r = run({ hosts: [host('a', [{ vmId: vm, state: 'running' }]), host('b', [{ vmId: vm, state: 'running' }])], vms: [record(vm, 'a')] });
    expect(r.findings).toEqual([expect.objectContaining({ kind: 'split-brain', vmId: vm, hostId: 'a', otherHostIds: ['b'], agentState: 'running' })]);
  });

  it('given a split brain whose other copy was paused, then it is still reported (a paused copy is kept, not settled)', () => {
    const r = run({ hosts: [host('a', [{ vmId: vm, state: 'running' }]), host('b', [{ vmId: vm, state: 'paused' }])], vms: [record(vm, 'a')] });
    expect(r.findings).toEqual([expect.objectContaining({ kind: 'split-brain', otherHostIds: ['b'], agentState: 'paused' })]);
  });

  it('given a VM recorded on a that only b runs, then it is orphaned on b and not missing', () => {
    expect(kinds({ hosts: [host('a', []), host('b', [{ vmId: vm, state: 'running' }])], vms: [record(vm, 'a')] })).toEqual([['orphaned', vm, 'b']]);
  });

  it('given a migration in flight (a reservation), then neither its source and target copies nor its absence are reported', () => {
    const copies = [host('a', [{ vmId: vm, state: 'running' }]), host('b', [{ vmId: vm, state: 'running' }])];
    expect(kinds({ hosts: copies, vms: [record(vm, 'a')], migrating: new Set([vm]) })).toEqual([]);
    expect(kinds({ hosts: [host('a', []), host('b', [])], vms: [record(vm, 'a')], migrating: new Set([vm]) })).toEqual([]);
  });

  it('given a paused incoming copy on a target, or a stopped one, then it is not a copy that runs', () => {
    const hosts = [host('a', [{ vmId: vm, state: 'running' }]), host('b', [{ vmId: vm, state: 'incoming', migrationId: randomUUID() }]), host('c', [{ vmId: vm, state: 'stopped' }])];
    expect(kinds({ hosts, vms: [record(vm, 'a')] })).toEqual([]);
  });

  it('given a VM being created (starting), then it is not judged', () => {
    expect(kinds({ hosts: [host('a', [])], vms: [record(vm, 'a', 'starting')] })).toEqual([]);
    expect(kinds({ hosts: [host('a', [{ vmId: vm, state: 'running' }])], vms: [record(vm, 'a', 'starting')] })).toEqual([]);
  });

  it('given a host that is down or whose report is stale, then its VMs are neither missing nor copies, and it is listed unknown', () => {
    const r = run({ hosts: [host('a', [], { current: false }), host('b', [{ vmId: vm, state: 'running' }], { current: false })], vms: [record(vm, 'a')] });
    expect(r.findings).toEqual([]);
    expect(r.unknown).toEqual(['a', 'b']);
  });

  it('given a report not settleMs newer than the record (a relocation just committed), then that pair waits for the next pass', () => {
    const justMoved = new Date(later.getTime() - settleMs + 1);
    expect(kinds({ hosts: [host('a', [{ vmId: vm, state: 'running' }]), host('b', [])], vms: [record(vm, 'b', 'running', justMoved)] })).toEqual([]);
    const settled = new Date(later.getTime() - settleMs);
    expect(kinds({ hosts: [host('a', [{ vmId: vm, state: 'running' }]), host('b', [])], vms: [record(vm, 'b', 'running', settled)] })).toEqual([['orphaned', vm, 'a']]);
  });

  it('given a VM that inventory records stopped but an agent runs, then it is orphaned with the recorded state', () => {
    const r = run({ hosts: [host('a', [{ vmId: vm, state: 'running' }])], vms: [record(vm, 'a', 'stopped')] });
    expect(r.findings).toEqual([expect.objectContaining({ kind: 'orphaned', hostId: 'a', recordedState: 'stopped' })]);
  });
});

describe('reconciliation: the decision in slices', () => {
  // small pools of hosts and VM ids, so that copies, records and reservations collide
  const HOSTS = ['a', 'b', 'c', 'd'];
  const VMS = Array.from({ length: 12 }, () => randomUUID());
  const AGENT_STATES: AgentVmState[] = ['running', 'paused', 'incoming', 'stopped'];
  const at = fc.integer({ min: 0, max: 6_000 }).map((ms) => new Date(t0.getTime() + ms));
  const input: fc.Arbitrary<DetectionInput> = fc.record({
    hosts: fc.uniqueArray(
      fc.record({
        hostId: fc.constantFrom(...HOSTS),
        current: fc.boolean(),
        reportedAt: fc.option(at, { nil: null }),
        vms: fc.uniqueArray(fc.record({ vmId: fc.constantFrom(...VMS), state: fc.constantFrom(...AGENT_STATES) }), { selector: (v) => v.vmId, maxLength: 8 }),
      }),
      { selector: (h) => h.hostId },
    ),
    vms: fc.uniqueArray(
      fc.record({ id: fc.constantFrom(...VMS), hostId: fc.constantFrom(...HOSTS), state: fc.constantFrom('starting', 'running', 'stopped', 'error'), updatedAt: at }),
      { selector: (v) => v.id },
    ),
    migrating: fc.subarray(VMS).map((ids) => new Set(ids)),
    settleMs: fc.constant(settleMs),
  });

  it('given any reports, records and reservations, then the decision in slices of any size is the decision in one go', async () => {
    await fc.assert(
      fc.asyncProperty(input, fc.integer({ min: 1, max: 40 }), async (i, slice) => {
        expect(await detectInSlices(i, () => Promise.resolve(), slice)).toEqual(detect(i));
      }),
    );
  });

  it('given 10,000 VMs, then the decision lets go between slices, and not at all for an input within one slice', async () => {
    const hosts = Array.from({ length: 100 }, (_, n) => host(`h${n}`, []));
    const vms = Array.from({ length: 10_000 }, (_, n) => {
      const h = hosts[n % hosts.length];
      (h.vms as ReportedVm[]).push({ vmId: `vm-${n}`, state: 'running' });
      return record(`vm-${n}`, h.hostId);
    });
    let pauses = 0;
    const i = { hosts, vms, migrating: new Set<string>(), settleMs };
    const r = await detectInSlices(i, async () => void (pauses += 1), 1_000);
    expect(r.findings).toEqual([]);
    // every VM is a reported copy, a record, a VM held somewhere and a record checked for absence: 40,000 units
    expect(pauses).toBe(40);
    pauses = 0;
    await detectInSlices({ ...i, hosts: hosts.slice(0, 1), vms: vms.slice(0, 1) }, async () => void (pauses += 1), 1_000);
    expect(pauses).toBe(0);
  });
});
