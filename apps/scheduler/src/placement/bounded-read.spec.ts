import fc from 'fast-check';
import { PASSED_OVER_LISTED, PLACEMENT_RULES_IN_INVENTORY, type PlacementHost, type PlacementUnlisted, type Verdict } from '@flexmig/contracts';
import { choosePlacement, type InboundLoad, type PlacementVm } from './placement';
import { CANDIDATES_PER_CPU, unlistedByRule } from './placement.service';

/**
 * A bounded read (`inventory.host.placement-list` with `for`) must choose what a read of every host chooses,
 * with the same counts: inventory lists the hosts the scheduler has inbound migrations to and, of each CPU,
 * the `perCpu` hosts passing its rules with the lowest memory utilisation after placement; it counts the
 * others. This is that selection as inventory's statement makes it (apps/inventory placement-hosts.ts,
 * tested there against PostgreSQL), checked against choosePlacement over every host, for random fleets.
 */
function inventorySelection(hosts: PlacementHost[], vm: PlacementVm, include: string[], perCpu: number, named: number): { listed: PlacementHost[]; unlisted: PlacementUnlisted } {
  const ruleOf = (h: PlacementHost): (typeof PLACEMENT_RULES_IN_INVENTORY)[number] | null =>
    h.id === vm.hostId
      ? 'source'
      : h.state !== 'up'
        ? 'down'
        : h.maintenance
          ? 'maintenance'
          : h.capacityMemoryMiB - h.allocatedMemoryMiB < vm.memoryMiB
            ? 'memory'
            : h.capacityVcpus - h.allocatedVcpus < vm.vcpus
              ? 'vcpus'
              : null;
  const unlisted: PlacementUnlisted = { byRule: { source: 0, down: 0, maintenance: 0, memory: 0, vcpus: 0 }, passing: [] };
  const listed = new Set(hosts.filter((h) => include.includes(h.id)));
  const byId = (a: PlacementHost, b: PlacementHost) => (a.id < b.id ? -1 : 1);
  const failing = hosts.filter((h) => !include.includes(h.id) && ruleOf(h) !== null).sort(byId);
  failing.slice(0, named).forEach((h) => listed.add(h));
  const byCpu = new Map<string, PlacementHost[]>();
  for (const h of hosts) if (!include.includes(h.id) && ruleOf(h) === null) byCpu.set(`${h.cpu.vendor}|${h.cpu.featureSet}`, [...(byCpu.get(`${h.cpu.vendor}|${h.cpu.featureSet}`) ?? []), h]);
  const usedAfter = (h: PlacementHost) => (h.allocatedMemoryMiB + vm.memoryMiB) / h.capacityMemoryMiB;
  for (const group of byCpu.values()) {
    [...group].sort((a, b) => usedAfter(a) - usedAfter(b) || byId(a, b)).slice(0, perCpu).forEach((h) => listed.add(h));
    [...group].sort(byId).slice(0, named).forEach((h) => listed.add(h));
    const left = group.filter((h) => !listed.has(h)).length;
    if (left > 0) unlisted.passing.push({ ...group[0]!.cpu, count: left });
  }
  for (const h of failing) if (!listed.has(h)) unlisted.byRule[ruleOf(h)!]++;
  return { listed: [...listed], unlisted };
}

const CPUS = [
  { vendor: 'Intel' as const, featureSet: 'fs-a' },
  { vendor: 'Intel' as const, featureSet: 'fs-b' },
  { vendor: 'AMD' as const, featureSet: 'fs-c' },
];
const compatible: Verdict = { compatible: true, baseline: 'Westmere', missing: [], vendorMismatch: false, unchecked: [], reason: 'compatible' };
const lacking: Verdict = { ...compatible, compatible: false, missing: ['avx'], reason: 'host lacks 1 feature(s) of Westmere: avx' };

const fleet = fc.record({
  hosts: fc.array(
    fc.record({
      memoryMiB: fc.constantFrom(16_384, 32_768, 65_536),
      vcpus: fc.constantFrom(8, 16, 32),
      held: fc.oneof(fc.integer({ min: 0, max: 16_000 }), fc.integer({ min: 0, max: 70_000 })),
      heldVcpus: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 140 })),
      down: fc.integer({ min: 0, max: 6 }).map((x) => x === 0),
      maintenance: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
      cpu: fc.integer({ min: 0, max: 2 }),
      inbound: fc.option(fc.record({ migrations: fc.integer({ min: 1, max: 3 }), promisedMemoryMiB: fc.integer({ min: 0, max: 20_000 }), promisedVcpus: fc.integer({ min: 0, max: 8 }) }), { freq: 4 }),
    }),
    { minLength: 1, maxLength: 60 },
  ),
  compatibleCpus: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  vmMemory: fc.constantFrom(512, 2_048, 8_192),
  vmVcpus: fc.integer({ min: 1, max: 4 }),
  perCpu: fc.integer({ min: 1, max: 5 }),
  named: fc.integer({ min: 0, max: 5 }),
  source: fc.nat(),
});

describe('a bounded read chooses what a read of every host chooses', () => {
  it('the same host, the same counts by rule, the same reason when one is chosen; with what PlacementService asks for, the same hosts named', () => {
    fc.assert(
      fc.property(fleet, fc.boolean(), (f, wide) => {
        const hosts: PlacementHost[] = f.hosts.map((h, i) => ({
          id: `h-${String(i).padStart(3, '0')}`,
          clusterId: 'c',
          memoryMiB: h.memoryMiB,
          vcpus: h.vcpus,
          allocatedMemoryMiB: h.held,
          allocatedVcpus: h.heldVcpus,
          cpuAllocationRatio: 4,
          memoryAllocationRatio: 1,
          capacityMemoryMiB: h.memoryMiB,
          capacityVcpus: h.vcpus * 4,
          driver: 'sim',
          state: h.down ? 'down' : 'up',
          maintenance: h.maintenance,
          cpu: CPUS[h.cpu]!,
        }));
        const vm: PlacementVm = { id: 'vm', clusterId: 'c', hostId: hosts[f.source % hosts.length]!.id, memoryMiB: f.vmMemory, vcpus: f.vmVcpus, cpuBaseline: 'Westmere' };
        const inbound: Record<string, InboundLoad> = {};
        f.hosts.forEach((h, i) => h.inbound && (inbound[hosts[i]!.id] = h.inbound));
        const verdictOfCpu = (c: { featureSet: string }) => (f.compatibleCpus[CPUS.findIndex((x) => x.featureSet === c.featureSet)] ? compatible : lacking);
        const verdicts = Object.fromEntries(hosts.map((h) => [h.id, verdictOfCpu(h.cpu)]));

        const every = choosePlacement({ vm, hosts, verdicts, inbound });
        const perCpu = wide ? CANDIDATES_PER_CPU : f.perCpu;
        const { listed, unlisted } = inventorySelection(hosts, vm, Object.keys(inbound), perCpu, wide ? PASSED_OVER_LISTED : f.named);
        const read = choosePlacement({ vm, hosts: listed, verdicts, inbound, unlisted: unlistedByRule(unlisted, verdictOfCpu) });

        expect(read.chosen).toBe(every.chosen);
        expect(read.passedOverCount).toBe(every.passedOverCount);
        expect(read.passedOverByRule).toEqual(every.passedOverByRule);
        if (every.chosen !== null) expect(read.reason).toBe(every.reason);
        // with what PlacementService asks for, the same hosts named, with the same reasons
        if (wide) expect({ reason: read.reason, passedOver: read.passedOver }).toEqual({ reason: every.reason, passedOver: every.passedOver });
      }),
      { numRuns: 500 },
    );
  });
});
