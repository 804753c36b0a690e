import fc from 'fast-check';
import { groupByCpu, hostsOfSet, planForEveryHost, type PlanHost, representativesOf, verificationForEveryHost, VendorSchema } from '@flexmig/contracts';
import { listBaselines, planCluster, verifyMode } from '@flexmig/cpu-models';

/**
 * Inventory asks cpu-compat about one host per CPU and answers for every host (libs/contracts imc.ts,
 * `planForEveryHost`, `verificationForEveryHost`). Held here to what planCluster and verifyMode say when
 * asked about every host, for random clusters built from the catalog's real modes.
 */
const modes = listBaselines().filter((b) => b.vendor === 'Intel' || b.vendor === 'AMD');
const vendors = VendorSchema.options;

/** A CPU: a mode's features less a few (a host that lacks something), under its own vendor or another. */
const cpuArb = fc
  .record({
    mode: fc.constantFrom(...modes),
    drop: fc.array(fc.nat(), { maxLength: 3 }),
    otherVendor: fc.option(fc.constantFrom(...vendors), { freq: 6 }),
  })
  .map(({ mode, drop, otherVendor }) => ({
    vendor: otherVendor ?? mode.vendor,
    features: mode.features.filter((_, i) => !drop.some((d) => d % mode.features.length === i)),
  }));

/** A cluster: a few CPUs, each held by one host or several, in shuffled order. */
const clusterArb = fc
  .tuple(fc.array(fc.tuple(cpuArb, fc.integer({ min: 1, max: 4 })), { minLength: 1, maxLength: 5 }), fc.integer())
  .map(([cpus, seed]) => {
    const hosts: PlanHost[] = [];
    cpus.forEach(([cpu, count], c) => {
      // hosts of one CPU share one array, as inventory's reads give them; an equal copy must group with them too
      for (let i = 0; i < count; i++) hosts.push({ id: `h${c}-${i}`, vendor: cpu.vendor as PlanHost['vendor'], features: i === 2 ? [...cpu.features] : cpu.features });
    });
    // a deterministic shuffle: the order asked is not the groups' order
    return hosts.map((h, i) => ({ h, k: (i * 7919 + seed) % 104729 })).sort((a, b) => a.k - b.k).map((x) => x.h);
  });

const asked = (hosts: PlanHost[]) => hosts.map((h) => ({ id: h.id, vendor: h.vendor, features: h.features }));
const repsOf = (hosts: PlanHost[]) => {
  const groups = groupByCpu(hosts);
  return { groups, reps: hostsOfSet({ cpus: representativesOf(groups) }) };
};
const planView = (p: ReturnType<typeof planCluster>) => ({ mode: p.mode, reason: p.reason, holdingDown: p.holdingDown, withoutHost: p.withoutHost, hostModes: p.hostModes });

describe("a cluster's CPU questions asked of one host per CPU", () => {
  it('given random clusters, then the plan for every host from the representatives is the plan of every host', () => {
    fc.assert(
      fc.property(clusterArb, (hosts) => {
        const { groups, reps } = repsOf(hosts);
        const order = hosts.map((h) => h.id);
        expect(planForEveryHost(planView(planCluster(reps)), groups, order)).toEqual(planView(planCluster(asked(hosts))));
      }),
      { numRuns: 400 },
    );
  });

  it('given random clusters and modes, then the verification of every host from the representatives is that of every host', () => {
    fc.assert(
      fc.property(clusterArb, fc.constantFrom(...modes.map((m) => m.name)), (hosts, mode) => {
        const { groups, reps } = repsOf(hosts);
        expect(verificationForEveryHost(verifyMode(mode, reps), groups, hosts.map((h) => h.id))).toEqual(verifyMode(mode, asked(hosts)));
      }),
      { numRuns: 200 },
    );
  });

  it('given one host of a CPU and several of another, then without the lone host the mode may change, without one of the several it does not', () => {
    const [old, current] = [modes.find((m) => m.name === 'Westmere')!, modes.find((m) => m.name === 'Haswell')!];
    const hosts: PlanHost[] = [
      { id: 'old', vendor: 'Intel', features: old.features },
      { id: 'new-1', vendor: 'Intel', features: current.features },
      { id: 'new-2', vendor: 'Intel', features: current.features },
    ];
    const { groups, reps } = repsOf(hosts);
    const plan = planForEveryHost(planView(planCluster(reps)), groups, ['new-1', 'old', 'new-2']);
    expect(plan.mode).toBe('Westmere');
    expect(plan.withoutHost).toEqual([
      { hostId: 'new-1', mode: 'Westmere' },
      { hostId: 'old', mode: 'Haswell' },
      { hostId: 'new-2', mode: 'Westmere' },
    ]);
    expect(plan.holdingDown).toEqual(['old']);
    expect(reps).toHaveLength(2);
  });

  it('given a host that is in no group, then the answer says which host instead of leaving it out', () => {
    const { groups, reps } = repsOf([{ id: 'a', vendor: 'Intel', features: modes[0]!.features }]);
    const plan = planForEveryHost(planView(planCluster(reps)), groups, ['a']);
    expect(() => planForEveryHost(plan, groups, ['a', 'stranger'])).toThrow('host stranger is in no CPU group of the plan');
  });
});
