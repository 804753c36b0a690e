import type { EvacuationView } from '@flexmig/contracts';
import { evacuationIdOf, hostIdOfNode, nextAction, progressCondition, reasons } from './decide';

const id = '7f1c2b8e-0000-4000-8000-000000000001';
const node = (unschedulable: boolean, condition?: { status: 'True' | 'False'; reason: string; message?: string }) => ({
  name: 'node-a',
  hostId: 'node-a',
  unschedulable,
  ...(condition ? { condition: { type: 'FlexmigEvacuation', ...condition } } : {}),
});

describe('nextAction: one cordon, one evacuation', () => {
  it('marks a newly cordoned node first, then starts, then follows the evacuation its condition names', () => {
    expect(nextAction(node(true))).toEqual({ kind: 'mark-requested' });
    expect(nextAction(node(true, { status: 'False', reason: reasons.uncordoned }))).toEqual({ kind: 'mark-requested' });
    expect(nextAction(node(true, { status: 'True', reason: reasons.requested, message: 'node node-a was cordoned' }))).toEqual({ kind: 'start' });
    expect(nextAction(node(true, { status: 'True', reason: reasons.evacuating, message: `evacuation ${id} of host node-a: running` }))).toEqual({ kind: 'follow', evacuationId: id });
  });

  it('does nothing more once the evacuation ended, until the node is uncordoned; then ends maintenance once', () => {
    for (const reason of [reasons.evacuated, reasons.withFailures, reasons.notStarted]) expect(nextAction(node(true, { status: 'True', reason, message: `evacuation ${id}` }))).toEqual({ kind: 'none' });
    expect(nextAction(node(false, { status: 'True', reason: reasons.evacuated }))).toEqual({ kind: 'end-maintenance' });
    expect(nextAction(node(false, { status: 'False', reason: reasons.uncordoned }))).toEqual({ kind: 'none' });
    expect(nextAction(node(false))).toEqual({ kind: 'none' });
  });
});

describe('hostIdOfNode', () => {
  it('is the label when the node has it, else the mapped node name; undefined when neither is a host id', () => {
    expect(hostIdOfNode('Node-1.example.com', {}, 'flexmig.io/host-id')).toBe('node-1-example-com');
    expect(hostIdOfNode('node-1', { 'flexmig.io/host-id': 'hv-07' }, 'flexmig.io/host-id')).toBe('hv-07');
    expect(hostIdOfNode('...', {}, 'flexmig.io/host-id')).toBeUndefined();
  });
});

describe('progressCondition', () => {
  const view = (state: EvacuationView['state'], moved: number, notMoved: number): EvacuationView => ({
    id,
    hostId: 'node-a',
    state,
    requestedBy: 'drain-watcher',
    counts: { total: moved + notMoved, moving: 0, moved, failed: 0, notMoved },
    vms: notMoved ? [{ vmId: id, name: 'huge', migrationId: null, migrationState: null, targetHostId: null, outcome: 'not-moved', reason: 'no host has room', code: 'INSUFFICIENT_CAPACITY', earlierMigrationIds: [] }] : [],
    createdAt: '2026-11-30T00:00:00.000Z',
    updatedAt: '2026-11-30T00:00:00.000Z',
    finishedAt: null,
  });

  it('names the evacuation (read back by evacuationIdOf), its counts, and what could not move', () => {
    const c = progressCondition(view('completed-with-failures', 2, 1));
    expect(c).toMatchObject({ status: 'True', reason: reasons.withFailures });
    expect(evacuationIdOf(c.message)).toBe(id);
    expect(c.message).toContain('2 of 3 VMs moved');
    expect(c.message).toContain('huge: no host has room');
    expect(progressCondition(view('running', 0, 0)).reason).toBe(reasons.evacuating);
    expect(progressCondition(view('completed', 3, 0)).reason).toBe(reasons.evacuated);
  });
});
