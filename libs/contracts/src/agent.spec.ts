import { pausedWithSyncMemory, resumedWithTransferState } from './agent';

describe('pausedWithSyncMemory (a step 4 that ended with the guest paused did step 5)', () => {
  const at = '2026-12-01T20:00:00.000Z';

  it("answers step 4's pause time, from a reply or from the saga's stored result", () => {
    expect(pausedWithSyncMemory('sync-memory', { migrationId: 'm', step: 4, pausedAt: at })).toBe(at);
    expect(pausedWithSyncMemory('sync-memory', { pausedAt: at, stats: { transferredBytes: 1 } })).toBe(at);
  });

  it('answers nothing for a step 4 without a pause, or with no usable time', () => {
    expect(pausedWithSyncMemory('sync-memory', { finishedAt: at })).toBeUndefined();
    expect(pausedWithSyncMemory('sync-memory', { pausedAt: '' })).toBeUndefined();
    expect(pausedWithSyncMemory('sync-memory', { pausedAt: 1_764_619_200_000 })).toBeUndefined();
    expect(pausedWithSyncMemory('sync-memory', null)).toBeUndefined();
    expect(pausedWithSyncMemory('sync-memory', [at])).toBeUndefined();
    expect(pausedWithSyncMemory('sync-memory', at)).toBeUndefined();
  });

  it('answers nothing for any other step, even one whose reply carries pausedAt (step 5 is step 5)', () => {
    for (const step of ['transfer-memory', 'pause-source', 'transfer-state', 'resume-target'] as const) {
      expect(pausedWithSyncMemory(step, { pausedAt: at })).toBeUndefined();
    }
  });
});

describe('resumedWithTransferState (a target half of step 6 that resumed the guest did step 7)', () => {
  const at = '2026-12-03T12:00:00.000Z';

  it("answers the target's resume time, from its reply", () => {
    expect(resumedWithTransferState('transfer-state', { migrationId: 'm', step: 6, resumedAt: at })).toBe(at);
    expect(resumedWithTransferState('transfer-state', { resumedAt: at })).toBe(at);
  });

  it('answers nothing for a step 6 without a resume, or with no usable time', () => {
    expect(resumedWithTransferState('transfer-state', {})).toBeUndefined();
    expect(resumedWithTransferState('transfer-state', { resumedAt: '' })).toBeUndefined();
    expect(resumedWithTransferState('transfer-state', { resumedAt: 1_764_763_200_000 })).toBeUndefined();
    expect(resumedWithTransferState('transfer-state', null)).toBeUndefined();
    expect(resumedWithTransferState('transfer-state', undefined)).toBeUndefined();
    expect(resumedWithTransferState('transfer-state', [at])).toBeUndefined();
  });

  it('answers nothing for any other step, even one whose reply carries resumedAt (step 7 is step 7)', () => {
    for (const step of ['sync-memory', 'pause-source', 'resume-target', 'stop-source'] as const) {
      expect(resumedWithTransferState(step, { resumedAt: at })).toBeUndefined();
    }
  });
});
