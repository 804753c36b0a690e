import { groupByCpu, hostsOfSet, PlanCluster, type PlanHost, VerifyCpuMode } from './index';

const ivb = ['apic', 'avx', 'sse4_2'];
const hsw = ['apic', 'avx', 'avx2', 'sse4_2'];
const host = (id: string, features: string[], vendor: PlanHost['vendor'] = 'Intel'): PlanHost => ({ id, vendor, features });

describe("a cluster's hosts sent grouped by CPU", () => {
  const hosts = [host('h1', ivb), host('h2', hsw), host('h3', ivb), host('h4', ivb, 'AMD'), host('h5', [...hsw])];

  it('given hosts of three CPUs, then each CPU is one group with its hosts in the order given, groups in first-seen order', () => {
    expect(groupByCpu(hosts)).toEqual([
      { vendor: 'Intel', features: ivb, hostIds: ['h1', 'h3'] },
      { vendor: 'Intel', features: hsw, hostIds: ['h2', 'h5'] },
      { vendor: 'AMD', features: ivb, hostIds: ['h4'] },
    ]);
  });

  it('given features that differ only in order or by a name that contains the separator of another, then they are not one CPU', () => {
    expect(groupByCpu([host('a', ['x', 'y']), host('b', ['y', 'x'])])).toHaveLength(2);
    expect(groupByCpu([host('a', ['x\ny']), host('b', ['x', 'y'])])).toHaveLength(2);
    expect(groupByCpu([host('a', ['x", "y']), host('b', ['x', 'y'])])).toHaveLength(2);
  });

  it('given hosts of two vendors that share one feature list (one array, as inventory reads them), then each vendor is its own group', () => {
    const shared = ['apic', 'avx'];
    const alternating = [host('a1', shared, 'AMD'), host('i1', shared), host('a2', shared, 'AMD'), host('i2', shared), host('i3', [...shared])];
    expect(groupByCpu(alternating)).toEqual([
      { vendor: 'AMD', features: shared, hostIds: ['a1', 'a2'] },
      { vendor: 'Intel', features: shared, hostIds: ['i1', 'i2', 'i3'] },
    ]);
  });

  it('given the groups back, then they are the same hosts with the same CPUs', () => {
    const back = hostsOfSet({ cpus: groupByCpu(hosts) });
    expect([...back].sort((a, b) => a.id.localeCompare(b.id))).toEqual(hosts);
  });

  it('given the form before groups (`hosts`) beside groups, then both count, `hosts` first', () => {
    expect(hostsOfSet({ hosts: [host('h9', hsw)], cpus: [{ vendor: 'Intel', features: ivb, hostIds: ['h1'] }] }).map((h) => h.id)).toEqual(['h9', 'h1']);
  });

  it('given a thousand hosts of a current CPU, then the grouped request is a small part of one sent host by host', () => {
    const features = Array.from({ length: 140 }, (_, i) => `feature_${i}`);
    const many = Array.from({ length: 1000 }, (_, i) => host(`host-${String(i).padStart(4, '0')}`, features));
    const flat = JSON.stringify({ hosts: many }).length;
    const grouped = JSON.stringify({ cpus: groupByCpu(many) }).length;
    expect(flat).toBeGreaterThan(1024 * 1024); // over NATS's default max_payload
    expect(grouped * 10).toBeLessThan(flat);
  });
});

describe('the requests that carry a host set', () => {
  const group = { vendor: 'Intel' as const, features: ivb, hostIds: ['h1', 'h2'] };

  it('given groups, hosts or both, then a plan is valid; given no host at all, then it is refused saying why', () => {
    expect(PlanCluster.request.safeParse({ cpus: [group] }).success).toBe(true);
    expect(PlanCluster.request.safeParse({ hosts: [host('h1', ivb)] }).success).toBe(true);
    const none = PlanCluster.request.safeParse({ cpus: [] });
    expect(none.success).toBe(false);
    expect(none.error?.issues[0]?.message).toBe('a plan needs at least one host');
    expect(PlanCluster.request.safeParse({}).success).toBe(false);
  });

  it('given a host twice (in two groups, or in a group and one by one), then the request is refused naming it', () => {
    const twice = PlanCluster.request.safeParse({ cpus: [group, { ...group, features: hsw, hostIds: ['h3', 'h2'] }] });
    expect(twice.error?.issues.map((i) => i.message)).toEqual(['host h2 is given twice']);
    expect(VerifyCpuMode.request.safeParse({ mode: 'IvyBridge', hosts: [host('h1', ivb)], cpus: [group] }).success).toBe(false);
  });

  it('given a group without hosts or a host id that is empty, then it is refused', () => {
    expect(PlanCluster.request.safeParse({ cpus: [{ ...group, hostIds: [] }] }).success).toBe(false);
    expect(PlanCluster.request.safeParse({ cpus: [{ ...group, hostIds: [''] }] }).success).toBe(false);
  });

  it('given a verification of no hosts, then it is valid (a cluster without hosts passes every mode); without a mode it is not', () => {
    expect(VerifyCpuMode.request.safeParse({ mode: 'IvyBridge' }).success).toBe(true);
    expect(VerifyCpuMode.request.safeParse({ cpus: [group] }).success).toBe(false);
  });
});
