import { randomUUID } from 'node:crypto';
import type { ReportedVm } from '@flexmig/contracts';
import { detect, DetectionInput, HostReport, RecordedVm } from './detect';

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
