import fc from 'fast-check';
import { HostIdSchema, hostIdFromName, isoTime } from './common';
import { AllocationRatiosSchema, DEFAULT_ALLOCATION_RATIOS, hostCapacity, UpdateAllocationRatiosSchema } from './inventory';
import { agentCompensation, isPastPointOfNoReturn, STEP_NAMES } from './steps';
import { CompensateCommandSchema, StepCommandSchema } from './agent';
import { MigrationPolicySchema } from './policy';

describe('hostIdFromName', () => {
  it.each([
    ['ip-10-0-1-2.ec2.internal', 'ip-10-0-1-2-ec2-internal'],
    ['Node-1.Example.COM', 'node-1-example-com'],
    ['host-a', 'host-a'],
    ['.weird..name_', 'weird-name'],
    ['a'.repeat(70) + '.x', 'a'.repeat(63)],
  ])('maps %s to a valid host id %s', (name, id) => {
    expect(hostIdFromName(name)).toBe(id);
    expect(HostIdSchema.safeParse(id).success).toBe(true);
  });

  it('leaves nothing valid when the name has no letters or digits, so the schema refuses it', () => {
    expect(HostIdSchema.safeParse(hostIdFromName('...')).success).toBe(false);
  });
});

describe('hostCapacity', () => {
  it("is the host's size times its cluster's ratios, rounded down", () => {
    expect(hostCapacity({ vcpus: 16, memoryMiB: 65_536 }, DEFAULT_ALLOCATION_RATIOS)).toEqual({ vcpus: 64, memoryMiB: 65_536 });
    expect(hostCapacity({ vcpus: 3, memoryMiB: 1000 }, { cpuAllocationRatio: 1.5, memoryAllocationRatio: 0.5 })).toEqual({ vcpus: 4, memoryMiB: 500 });
  });

  it('does not lose a unit to binary fractions (100 × 1.15 is 115)', () => {
    expect(100 * 1.15).toBeLessThan(115); // what a plain floor would get wrong
    expect(hostCapacity({ vcpus: 100, memoryMiB: 100 }, { cpuAllocationRatio: 1.15, memoryAllocationRatio: 1.15 })).toEqual({ vcpus: 115, memoryMiB: 115 });
  });

  it('refuses ratios outside (0, 64] for vCPUs and (0, 8] for memory', () => {
    expect(AllocationRatiosSchema.safeParse({ cpuAllocationRatio: 0, memoryAllocationRatio: 1 }).success).toBe(false);
    expect(AllocationRatiosSchema.safeParse({ cpuAllocationRatio: 65, memoryAllocationRatio: 1 }).success).toBe(false);
    expect(AllocationRatiosSchema.safeParse({ cpuAllocationRatio: 4, memoryAllocationRatio: 9 }).success).toBe(false);
    expect(UpdateAllocationRatiosSchema.safeParse({}).success).toBe(false);
    expect(UpdateAllocationRatiosSchema.safeParse({ memoryAllocationRatio: 1.5 }).success).toBe(true);
    expect(UpdateAllocationRatiosSchema.safeParse({ cpuAllocationRatio: 2, extra: 1 }).success).toBe(false);
  });
});

describe('step commands and compensations name their step', () => {
  const base = { migrationId: '6f1c3c7e-8a51-4b0e-9b53-2f1d1c7e0a11', vmId: '0b8e6a9c-7d2f-4c55-8e1a-3c9d2b7f6e44' };
  it('gives each agent step its compensation by role, and none from resume-target on', () => {
    expect(STEP_NAMES.map((s) => [s, agentCompensation(s, 'source') ?? null, agentCompensation(s, 'target') ?? null])).toEqual([
      ['verify-compatibility', null, null],
      ['transfer-config', null, 'destroy-incoming-vm'],
      ['transfer-memory', 'cancel-stream', null],
      ['sync-memory', 'cancel-stream', null],
      ['pause-source', 'resume-source', null],
      ['transfer-state', 'resume-source', 'destroy-incoming-vm'],
      ['resume-target', null, null],
      ['stop-source', null, null],
      ['commit', null, null],
    ]);
    expect(STEP_NAMES.filter(isPastPointOfNoReturn)).toEqual(['resume-target', 'stop-source', 'commit']);
  });

  it('refuses a compensation whose name, number or role do not agree', () => {
    const ok = { ...base, step: 6, stepName: 'transfer-state', compensation: 'destroy-incoming-vm', role: 'target' };
    expect(CompensateCommandSchema.safeParse(ok).success).toBe(true);
    expect(CompensateCommandSchema.safeParse({ ...ok, role: 'source' }).success).toBe(false); // the source resumes, it destroys nothing
    expect(CompensateCommandSchema.safeParse({ ...ok, step: 2 }).success).toBe(false);
    expect(CompensateCommandSchema.safeParse({ ...ok, step: 7, stepName: 'resume-target', compensation: 'resume-source', role: 'source' }).success).toBe(false);
    expect(CompensateCommandSchema.safeParse({ ...base, step: 5, role: 'source' }).success).toBe(false); // no name: refused
  });

  it('refuses a step command whose number and name disagree (code acts on the name)', () => {
    const cmd = {
      ...base,
      step: 2,
      stepName: 'transfer-config',
      attempt: 1,
      role: 'target',
      vm: { id: base.vmId, name: 'v', memoryMiB: 512, vcpus: 1, cpuBaseline: 'Westmere' },
      sourceHostId: 'host-a',
      targetHostId: 'host-b',
      policy: MigrationPolicySchema.parse({}),
    };
    expect(StepCommandSchema.safeParse(cmd).error).toBeUndefined();
    expect(StepCommandSchema.safeParse({ ...cmd, stepName: 'resume-target' }).success).toBe(false);
  });
});

describe('isoTime', () => {
  const iso = (ms: number) => new Date(ms).toISOString();

  it('writes what toISOString writes, for any time (whole or not, before 1970 or after 9999 too)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.double({ min: -8.64e15, max: 8.64e15, noNaN: true }), fc.integer({ min: 1.7e12, max: 1.9e12 })), (ms) => {
        expect(isoTime(ms)).toBe(iso(ms));
        expect(isoTime(new Date(ms))).toBe(iso(ms));
      }),
      { numRuns: 5000 },
    );
  });

  it('keeps each minute apart, whatever minutes alternate, at their edges', () => {
    const minute = Date.UTC(2026, 11, 3, 16, 5);
    const times = [minute - 1, minute, minute + 59_999, minute + 60_000, minute - 60_001, minute + 999.999, 0, 253_402_300_799_999, 253_402_300_800_000];
    for (let round = 0; round < 3; round++) for (const t of times) expect(isoTime(t)).toBe(iso(t));
    expect(isoTime(minute + 7_042.9)).toBe('2026-12-03T16:05:07.042Z');
  });

  it('refuses what toISOString refuses', () => {
    for (const bad of [NaN, Infinity, -Infinity, 8.64e15 + 1]) expect(() => isoTime(bad)).toThrow(RangeError);
    expect(() => isoTime(new Date(NaN))).toThrow(RangeError);
  });
});
