import { MAX_MEMORY_MIB } from './common';
import { pausedWithSyncMemory, pausedWithTransferMemory, resumedWithTransferState, VmSpecSchema, WORKLOAD_MAX_DIRTY_RATE_MIBPS } from './agent';
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

describe('pausedWithTransferMemory (a step 3 that ended with the guest paused did steps 4 and 5)', () => {
  const at = '2026-12-07T13:30:00.000Z';

  it("answers step 3's pause time, from a reply or from the saga's stored result", () => {
    expect(pausedWithTransferMemory('transfer-memory', { migrationId: 'm', step: 3, pausedAt: at, stats: { transferredBytes: 1 } })).toBe(at);
    expect(pausedWithTransferMemory('transfer-memory', { pausedAt: at })).toBe(at);
  });

  it('answers nothing for a step 3 without a pause, or with no usable time', () => {
    expect(pausedWithTransferMemory('transfer-memory', { stats: { transferredBytes: 1 } })).toBeUndefined();
    expect(pausedWithTransferMemory('transfer-memory', { pausedAt: '' })).toBeUndefined();
    expect(pausedWithTransferMemory('transfer-memory', { pausedAt: 1_764_619_200_000 })).toBeUndefined();
    expect(pausedWithTransferMemory('transfer-memory', null)).toBeUndefined();
    expect(pausedWithTransferMemory('transfer-memory', [at])).toBeUndefined();
  });

  it('answers nothing for any other step: a step 4 that paused is pausedWithSyncMemory', () => {
    for (const step of ['transfer-config', 'sync-memory', 'pause-source', 'transfer-state'] as const) {
      expect(pausedWithTransferMemory(step, { pausedAt: at })).toBeUndefined();
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

describe("a VM's workload (VmSpecSchema)", () => {
  const vm = { id: '00000000-0000-4000-8000-000000000001', name: 'w', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };

  it('takes a dirty rate and a working set up to their bounds', () => {
    expect(VmSpecSchema.safeParse({ ...vm, workload: { dirtyRateMiBps: WORKLOAD_MAX_DIRTY_RATE_MIBPS, workingSetMiB: MAX_MEMORY_MIB } }).success).toBe(true);
    expect(VmSpecSchema.safeParse({ ...vm, workload: { dirtyRateMiBps: 256.5 } }).success).toBe(true);
  });

  it('refuses one beyond them, or not finite: the sim would answer Infinity, which no reply may carry', () => {
    for (const workload of [{ dirtyRateMiBps: 1e308 }, { dirtyRateMiBps: WORKLOAD_MAX_DIRTY_RATE_MIBPS + 1 }, { dirtyRateMiBps: 1, workingSetMiB: 1e300 }, { dirtyRateMiBps: Number.POSITIVE_INFINITY }]) {
      expect(VmSpecSchema.safeParse({ ...vm, workload }).success).toBe(false);
    }
  });
});
