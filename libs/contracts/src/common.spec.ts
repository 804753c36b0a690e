import { HostIdSchema, hostIdFromName } from './common';
import { AllocationRatiosSchema, DEFAULT_ALLOCATION_RATIOS, hostCapacity, UpdateAllocationRatiosSchema } from './inventory';

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
