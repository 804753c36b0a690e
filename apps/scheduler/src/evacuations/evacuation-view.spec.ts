import { evacuationView, failureOf, MigrationFacts } from './evacuation-view';
import type { EvacuationEntity, EvacuationItemRecord } from './evacuation.entity';

const at = new Date('2025-01-01T00:00:00.000Z');
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

const row = (items: EvacuationItemRecord[], requested = true): EvacuationEntity => ({
  id: id(999),
  hostId: 'host-a',
  clusterId: id(998),
  state: 'running',
  items,
  requestedBy: 'alice',
  requestedAt: requested ? at : null,
  createdAt: at,
  updatedAt: at,
  finishedAt: null,
});
const asked = (n: number): EvacuationItemRecord => ({ vmId: id(n), name: `vm-${n}`, migrationId: id(100 + n), reason: null, code: null });
const migration = (n: number, state: string, failure: MigrationFacts['failure'] = null): [string, MigrationFacts] => [
  id(100 + n),
  { id: id(100 + n), state, targetHostId: 'host-b', failure },
];

describe('evacuation view', () => {
  it('is running while a migration is queued or runs', () => {
    const v = evacuationView(row([asked(1), asked(2)]), new Map([migration(1, 'completed'), migration(2, 'queued')]));
    expect(v.state).toBe('running');
    expect(v.counts).toEqual({ total: 2, moving: 1, moved: 1, failed: 0, notMoved: 0 });
    expect(v.vms[1]).toMatchObject({ outcome: 'moving', migrationState: 'queued', targetHostId: 'host-b' });
  });

  it('is running until every VM has been asked for, even when all asked so far are done', () => {
    expect(evacuationView(row([asked(1)], false), new Map([migration(1, 'completed')])).state).toBe('running');
  });

  it('is completed when every VM moved, and when the host had none', () => {
    expect(evacuationView(row([asked(1)]), new Map([migration(1, 'completed')])).state).toBe('completed');
    expect(evacuationView(row([]), new Map()).state).toBe('completed');
  });

  it('lists a VM that could not move with the reason, and ends with failures', () => {
    const cannot: EvacuationItemRecord = { vmId: id(3), name: 'big', migrationId: null, reason: 'no host can take VM big: host-b: not enough free memory', code: 'INSUFFICIENT_CAPACITY' };
    const v = evacuationView(row([asked(1), cannot]), new Map([migration(1, 'completed')]));
    expect(v.state).toBe('completed-with-failures');
    expect(v.vms[1]).toEqual({ ...cannot, migrationState: null, targetHostId: null, outcome: 'not-moved' });
    expect(v.counts.notMoved).toBe(1);
  });

  it('gives the reason a migration did not complete', () => {
    const failure = failureOf({ cause: { kind: 'step-failed', step: 1, name: 'verify-compatibility', reason: 'host lacks avx', error: { code: 'CPU_INCOMPATIBLE' } } });
    const v = evacuationView(row([asked(1)]), new Map([migration(1, 'rolled-back', failure)]));
    expect(v.state).toBe('completed-with-failures');
    expect(v.vms[0]).toMatchObject({ outcome: 'failed', reason: 'step 1 (verify-compatibility) failed: host lacks avx', code: 'CPU_INCOMPATIBLE' });
  });

  it('says who cancelled a migration', () => {
    expect(failureOf({ cause: { kind: 'cancelled', reason: 'changed my mind', by: 'api' } })?.reason).toBe('cancelled by api: changed my mind');
  });
});
