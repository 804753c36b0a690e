import { CpuGroup, CpuVerdict, hostsOfSet, PlanCluster, PlanHost, VerifyCpuMode } from '@flexmig/contracts';
import { planCluster, simulatedHostCpu, verdict, verifyMode } from '@flexmig/cpu-models';
import type { NatsBus } from '@flexmig/messaging';
import { CpuCompatClient } from './cpu-compat.client';

/** cpu-compat's two host-set answers, computed by the catalog functions it serves; every request kept. */
function catalogBus() {
  const sent: { subject: string; body: { hosts?: PlanHost[]; cpus?: CpuGroup[]; mode?: string } }[] = [];
  const bus = {
    request: async (contract: { subject: string }, body: { hosts?: PlanHost[]; cpus?: CpuGroup[]; mode?: string }) => {
      sent.push({ subject: contract.subject, body });
      if (contract === PlanCluster) return planCluster(hostsOfSet(PlanCluster.request.parse(body)));
      if (contract === VerifyCpuMode) return verifyMode(body.mode!, hostsOfSet(VerifyCpuMode.request.parse(body)));
      throw new Error(`unexpected ${contract.subject}`);
    },
  } as unknown as NatsBus;
  return { client: new CpuCompatClient(bus), sent };
}

const host = (id: string, mode: string) => ({ id, cpu: simulatedHostCpu(mode) });
// by id, the CPUs alternate: cpu-compat is asked about a (Westmere) and b (Haswell), one host per CPU
const hosts = [host('a', 'Westmere'), host('b', 'Haswell'), host('c', 'Westmere'), host('d', 'Haswell'), host('e', 'Westmere')];

describe('CpuCompatClient: cluster-wide questions asked of one host per CPU', () => {
  it('sends each CPU once with one of its hosts, and gives the plan of every host in the order of the hosts asked about', async () => {
    const { client, sent } = catalogBus();
    const plan = await client.plan(hosts);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body.hosts).toBeUndefined();
    expect(sent[0]!.body.cpus!.map((g) => g.hostIds)).toEqual([['a'], ['b']]);
    expect(plan.mode).toBe('Westmere');
    expect(plan.hostModes).toEqual([
      { hostId: 'a', mode: 'Westmere' },
      { hostId: 'b', mode: 'Haswell' },
      { hostId: 'c', mode: 'Westmere' },
      { hostId: 'd', mode: 'Haswell' },
      { hostId: 'e', mode: 'Westmere' },
    ]);
    expect(plan.withoutHost.map((h) => h.hostId)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(plan.holdingDown).toEqual(['a', 'c', 'e']);
    // as cpu-compat would plan every host (it answers without the vendor)
    const { vendor: _vendor, ...everyHost } = planCluster(hosts.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })));
    expect(plan).toEqual(everyHost);
  });

  it('verifies a mode the same way: one host per CPU out, every host in order back', async () => {
    const { client, sent } = catalogBus();
    const v = await client.verify('Haswell', hosts);
    expect(sent[0]!.body).toMatchObject({ mode: 'Haswell', cpus: [{ hostIds: ['a'] }, { hostIds: ['b'] }] });
    expect(v.pass).toBe(false);
    expect(v.hosts.map((h) => [h.hostId, h.pass])).toEqual([
      ['a', false],
      ['b', true],
      ['c', false],
      ['d', true],
      ['e', false],
    ]);
  });
});

describe('CpuCompatClient: step 1 verdicts', () => {
  it("asks cpu-compat once for the same baseline on the same CPU, and again for another baseline, CPU or passthrough VM's features", async () => {
    const sent: { baseline: string }[] = [];
    const bus = {
      request: async (contract: { subject: string }, body: { baseline: string; target: { vendor: string; features: string[] } }) => {
        if (contract !== CpuVerdict) throw new Error(`unexpected ${contract.subject}`);
        sent.push(body);
        // cpu-compat answers host-passthrough itself (the same feature set): no catalog verdict
        if (body.baseline === 'host-passthrough') return { compatible: true, baseline: body.baseline, missing: [], vendorMismatch: false, unchecked: [], reason: 'the same features' };
        return verdict(body.baseline, body.target);
      },
    } as unknown as NatsBus;
    const client = new CpuCompatClient(bus);
    const haswell = simulatedHostCpu('Haswell');
    const answers = await Promise.all(Array.from({ length: 20 }, () => client.verdict('IvyBridge', haswell)));
    expect(sent).toHaveLength(1);
    expect(answers.every((a) => a.compatible)).toBe(true);
    expect((await client.verdict('Skylake-Client', haswell)).compatible).toBe(false);
    expect((await client.verdict('IvyBridge', simulatedHostCpu('Westmere'))).compatible).toBe(false);
    await client.verdict('host-passthrough', haswell, haswell.features);
    await client.verdict('host-passthrough', haswell, haswell.features);
    await client.verdict('host-passthrough', haswell, simulatedHostCpu('Westmere').features);
    await client.verdict('IvyBridge', haswell);
    expect(sent.map((q) => q.baseline)).toEqual(['IvyBridge', 'Skylake-Client', 'IvyBridge', 'host-passthrough', 'host-passthrough']);
  });
});
