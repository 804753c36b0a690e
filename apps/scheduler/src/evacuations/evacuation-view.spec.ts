import { EVACUATION_PLACEMENTS } from '@flexmig/contracts';
import { evacuationView, failureOf, MigrationFacts, placeAgainBecause } from './evacuation-view';
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
    expect(v.vms[1]).toEqual({ ...cannot, migrationState: null, targetHostId: null, outcome: 'not-moved', earlierMigrationIds: [] });
    expect(v.counts.notMoved).toBe(1);
  });

  it('gives the reason a migration did not complete', () => {
    const failure = failureOf({ cause: { kind: 'step-failed', step: 3, name: 'transfer-memory', reason: 'the link dropped', error: { code: 'MIGRATION_FAILED' } } });
    const v = evacuationView(row([asked(1)]), new Map([migration(1, 'rolled-back', failure)]));
    expect(v.state).toBe('completed-with-failures');
    expect(v.vms[0]).toMatchObject({ outcome: 'failed', reason: 'step 3 (transfer-memory) failed: the link dropped', code: 'MIGRATION_FAILED', earlierMigrationIds: [] });
  });

  describe('a migration whose target step 1 refused', () => {
    const refused = (code: string, step = 1) =>
      failureOf({ cause: { kind: 'step-failed', step, name: step === 1 ? 'verify-compatibility' : 'transfer-config', reason: `host-b said ${code}`, error: { code } } });

    it.each(['HOST_IN_MAINTENANCE', 'HOST_DOWN', 'INSUFFICIENT_CAPACITY', 'CPU_INCOMPATIBLE'])('is placed again when the target answered %s', (code) => {
      const v = evacuationView(row([asked(1)]), new Map([migration(1, 'rolled-back', refused(code))]));
      expect(v.state).toBe('running');
      expect(v.counts).toMatchObject({ moving: 1, failed: 0 });
      expect(v.vms[0]).toMatchObject({ outcome: 'moving', migrationState: 'rolled-back', code, earlierMigrationIds: [] });
      expect(v.vms[0].reason).toBe(
        `its migration to host-b was refused: step 1 (verify-compatibility) failed: host-b said ${code}; placing the VM again (migration 2 of at most ${EVACUATION_PLACEMENTS})`,
      );
    });

    it('is not placed again for a refusal another host would repeat, a later step, or a cancel', () => {
      const cancelled = failureOf({ cause: { kind: 'cancelled', reason: 'no', by: 'alice' } });
      for (const [state, failure] of [
        ['rolled-back', refused('VM_NOT_RUNNING')],
        ['rolled-back', refused('HOST_DOWN', 2)],
        ['cancelled', cancelled],
        ['failed-needs-attention', refused('HOST_DOWN')],
      ] as const) {
        expect(placeAgainBecause(asked(1), migration(1, state, failure)[1])).toBeNull();
        expect(evacuationView(row([asked(1)]), new Map([migration(1, state, failure)])).vms[0].outcome).toBe('failed');
      }
    });

    it('is placed again until the evacuation asked for EVACUATION_PLACEMENTS migrations of the VM, then fails saying why', () => {
      const earlier = Array.from({ length: EVACUATION_PLACEMENTS - 2 }, (_, i) => id(500 + i));
      const second: EvacuationItemRecord = { ...asked(1), earlierMigrationIds: earlier };
      expect(placeAgainBecause(second, migration(1, 'rolled-back', refused('HOST_DOWN'))[1])).toContain(`migration ${EVACUATION_PLACEMENTS} of at most`);

      const last: EvacuationItemRecord = { ...asked(1), earlierMigrationIds: [...earlier, id(600)] };
      const v = evacuationView(row([last]), new Map([migration(1, 'rolled-back', refused('HOST_DOWN'))]));
      expect(v.state).toBe('completed-with-failures');
      expect(v.vms[0]).toMatchObject({ outcome: 'failed', code: 'HOST_DOWN', earlierMigrationIds: last.earlierMigrationIds });
      expect(v.vms[0].reason).toContain(`step 1 refused each of the ${EVACUATION_PLACEMENTS} targets placement chose`);
    });

    it('shows the earlier migrations of a VM that moved on a later one', () => {
      const moved: EvacuationItemRecord = { ...asked(1), earlierMigrationIds: [id(700)] };
      const v = evacuationView(row([moved]), new Map([migration(1, 'completed')]));
      expect(v.state).toBe('completed');
      expect(v.vms[0]).toMatchObject({ outcome: 'moved', migrationId: id(101), earlierMigrationIds: [id(700)] });
    });
  });

  it('says who cancelled a migration', () => {
    expect(failureOf({ cause: { kind: 'cancelled', reason: 'changed my mind', by: 'api' } })?.reason).toBe('cancelled by api: changed my mind');
  });
});
