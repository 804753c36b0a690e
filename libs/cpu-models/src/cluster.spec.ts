import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { clusterMode, getBaseline, modesHighestFirst, planCluster, simulatedHostCpu, verifyMode } from './index';

const host = (id: string, mode: string, drop: string[] = []) => {
  const cpu = simulatedHostCpu(mode);
  return { id, vendor: cpu.vendor, features: cpu.features.filter((f) => !drop.includes(f)) };
};

describe('clusterMode', () => {
  it('SandyBridge + IvyBridge hosts → SandyBridge', () => {
    expect(clusterMode([host('snb', 'SandyBridge'), host('ivb', 'IvyBridge')])).toMatchObject({ mode: 'SandyBridge', vendor: 'Intel' });
  });

  it('one host without TSX takes the cluster to the -noTSX branch', () => {
    expect(clusterMode([host('a', 'Cascadelake'), host('b', 'Cascadelake', ['hle', 'rtm'])]).mode).toBe('Cascadelake-noTSX');
    // Haswell with TSX and Broadwell without: the common mode is Haswell-noTSX
    expect(clusterMode([host('a', 'Haswell'), host('b', 'Broadwell', ['hle', 'rtm'])]).mode).toBe('Haswell-noTSX');
  });

  it('is null, with the reason, for mixed vendors, no hosts, or no common mode', () => {
    const mixed = clusterMode([host('i', 'IvyBridge'), host('a', 'EPYC')]);
    expect(mixed.mode).toBeNull();
    expect(mixed.reason).toContain('mixed vendors');
    expect(clusterMode([]).mode).toBeNull();
    const noCommon = clusterMode([host('a', 'Merom', ['ssse3'])]);
    expect(noCommon.mode).toBeNull();
    expect(noCommon.reason).toContain('no Intel mode');
  });

  it('fails on a host with no usable features', () => {
    try {
      clusterMode([host('a', 'IvyBridge'), { id: 'b', vendor: 'Intel', features: [] }]);
      throw new Error('expected a throw');
    } catch (e) {
      expect((e as FlexmigError).code).toBe(ErrorCode.EmptyFeatureList);
      expect((e as FlexmigError).message).toContain('host b');
    }
  });
});

describe('planCluster', () => {
  it('names the old host that holds the cluster down and what the cluster would be without it', () => {
    const plan = planCluster([host('h1', 'Skylake-Server'), host('h2', 'Cascadelake'), host('old', 'Westmere'), host('h3', 'Icelake')]);
    expect(plan.mode).toBe('Westmere');
    expect(plan.holdingDown).toEqual(['old']);
    expect(plan.withoutHost).toEqual([
      { hostId: 'h1', mode: 'Westmere' },
      { hostId: 'h2', mode: 'Westmere' },
      { hostId: 'old', mode: 'Skylake-Server' },
      { hostId: 'h3', mode: 'Westmere' },
    ]);
    expect(plan.hostModes.find((h) => h.hostId === 'h3')!.mode).toBe('Icelake');
  });

  it('two equally old hosts both hold it down (removing one alone changes nothing)', () => {
    const plan = planCluster([host('a', 'IvyBridge'), host('b', 'IvyBridge'), host('c', 'Haswell')]);
    expect(plan.mode).toBe('IvyBridge');
    expect(plan.holdingDown).toEqual(['a', 'b']);
    expect(plan.withoutHost.map((w) => w.mode)).toEqual(['IvyBridge', 'IvyBridge', 'IvyBridge']);
  });

  it('on a TSX branch, each host that caps one dimension holds it down', () => {
    const plan = planCluster([host('tsx', 'Haswell'), host('notsx', 'Broadwell', ['hle', 'rtm']), host('new', 'Skylake-Server')]);
    expect(plan.mode).toBe('Haswell-noTSX');
    expect(plan.holdingDown).toEqual(['tsx', 'notsx']);
  });

  it('the one AMD host in an Intel cluster holds it down (mixed vendors)', () => {
    const plan = planCluster([host('i1', 'IvyBridge'), host('i2', 'Haswell'), host('amd', 'EPYC')]);
    expect(plan.mode).toBeNull();
    expect(plan.holdingDown).toEqual(['amd']);
    expect(plan.withoutHost.find((w) => w.hostId === 'amd')!.mode).toBe('IvyBridge');
  });

  it('hosts that share one feature array (a group of one CPU) plan as hosts with copies of it; a shared array with another vendor is that vendor', () => {
    const ivb = host('x', 'IvyBridge').features;
    const shared = [{ id: 'a', vendor: 'Intel', features: ivb }, { id: 'b', vendor: 'Intel', features: ivb }, { id: 'c', vendor: 'AMD', features: ivb }];
    const copies = shared.map((h) => ({ ...h, features: [...h.features] }));
    expect(planCluster(shared)).toEqual(planCluster(copies));
    expect(planCluster(shared).reason).toMatch(/mixed vendors \(AMD, Intel\)/);
    expect(verifyMode('SandyBridge', shared)).toEqual(verifyMode('SandyBridge', copies));
    expect(verifyMode('SandyBridge', shared).hosts.map((h) => [h.hostId, h.pass])).toEqual([['a', true], ['b', true], ['c', false]]);
  });

  it('a single host is its own cluster; without it there is none', () => {
    const plan = planCluster([host('solo', 'EPYC-Rome')]);
    expect(plan).toMatchObject({ mode: 'EPYC-Rome', holdingDown: ['solo'], withoutHost: [{ hostId: 'solo', mode: null }] });
  });
});

// README decision 8. Expected modes worked out from libvirt 12.8.0's model files (x86_SierraForest.xml,
// x86_ClearwaterForest.xml, x86_Snowridge.xml, x86_Denverton.xml, x86_GraniteRapids.xml,
// x86_SapphireRapids.xml, x86_Skylake-Client-noTSX-IBRS.xml): SierraForest has every feature of
// Skylake-Client minus hle/rtm but no AVX-512 and no TSX; Snowridge and Denverton have no AVX at all;
// GraniteRapids lacks SierraForest's avx-vnni-int8, avx-ne-convert, avx-ifma, cmpccxadd and Snowridge's
// cldemote, movdiri, movdir64b.
describe('E-core Xeons (intel-ecore ladder)', () => {
  /** What `auto` does: walk modesHighestFirst and take the first mode every host passes. */
  const firstPassing = (hosts: ReturnType<typeof host>[]) => modesHighestFirst('Intel').find((m) => verifyMode(m.name, hosts).pass)?.name ?? null;

  it('a cluster of Sierra Forest hosts gets SierraForest, above the main ladder answer (Skylake-Client-noTSX)', () => {
    const hosts = [host('srf-1', 'SierraForest'), host('srf-2', 'SierraForest')];
    expect(clusterMode(hosts)).toMatchObject({ mode: 'SierraForest', vendor: 'Intel' });
    expect(firstPassing(hosts)).toBe('SierraForest');
    expect(getBaseline('Skylake-Client-noTSX').features.every((f) => getBaseline('SierraForest').features.includes(f))).toBe(true);
  });

  it('a mixed cluster of E-core and P-core Xeons (Xeon 6: Granite Rapids + Sierra Forest) gets the main ladder mode both have', () => {
    const hosts = [host('gnr', 'GraniteRapids'), host('srf', 'SierraForest')];
    const plan = planCluster(hosts);
    // on the E-core ladder the common features reach only Denverton (libvirt's GraniteRapids lacks
    // Snowridge's cldemote/movdiri/movdir64b), which has no AVX: the main ladder's Skylake-Client-noTSX wins
    expect(plan).toMatchObject({ mode: 'Skylake-Client-noTSX', vendor: 'Intel' });
    expect(verifyMode('Denverton', hosts).pass).toBe(true); // valid, but it would cost every VM AVX/AVX2
    expect(verifyMode('Snowridge', hosts).hosts.find((h) => h.hostId === 'gnr')!.missing).toEqual(['cldemote', 'movdir64b', 'movdiri']);
    expect(getBaseline('Denverton').features).not.toContain('avx');
    // each host alone would run higher, on its own ladder: both hold the cluster down
    expect(plan.hostModes).toEqual([
      { hostId: 'gnr', mode: 'GraniteRapids' },
      { hostId: 'srf', mode: 'SierraForest' },
    ]);
    expect(plan.withoutHost).toEqual([
      { hostId: 'gnr', mode: 'SierraForest' },
      { hostId: 'srf', mode: 'GraniteRapids' },
    ]);
    expect(plan.holdingDown).toEqual(['gnr', 'srf']);
    expect(firstPassing(hosts)).toBe('Skylake-Client-noTSX');
    // Sapphire Rapids and a TSX-less Icelake P-core host join at the same mode
    expect(clusterMode([...hosts, host('spr', 'SapphireRapids'), host('icx', 'Icelake', ['hle', 'rtm'])]).mode).toBe('Skylake-Client-noTSX');
  });

  it('Clearwater Forest with Sierra Forest hosts → SierraForest', () => {
    const hosts = [host('cwf', 'ClearwaterForest'), host('srf', 'SierraForest')];
    expect(clusterMode(hosts).mode).toBe('SierraForest');
    expect(clusterMode([host('cwf', 'ClearwaterForest')]).mode).toBe('ClearwaterForest');
    expect(firstPassing(hosts)).toBe('SierraForest');
  });

  it('Denverton with Snowridge hosts → Denverton (their main-ladder answer is only Westmere)', () => {
    const hosts = [host('dnv', 'Denverton'), host('snr', 'Snowridge')];
    expect(clusterMode(hosts).mode).toBe('Denverton');
    expect(planCluster([host('dnv', 'Denverton')]).mode).toBe('Denverton');
    expect(firstPassing(hosts)).toBe('Denverton');
  });

  it('orders each E-core mode just above the highest main mode it contains', () => {
    const order = modesHighestFirst('Intel').map((m) => m.name);
    expect(order.slice(order.indexOf('Skylake-Client'), order.indexOf('Skylake-Client-noTSX') + 1)).toEqual([
      'Skylake-Client', 'ClearwaterForest', 'SierraForest', 'Skylake-Client-noTSX',
    ]);
    expect(order.slice(order.indexOf('Nehalem') - 3, order.indexOf('Nehalem') + 1)).toEqual(['Snowridge', 'Denverton', 'Westmere', 'Nehalem']);
    expect(order).toHaveLength(28);
    expect(modesHighestFirst('Hygon').map((m) => m.name)).toEqual(['Dhyana-v2', 'Dhyana']);
    expect(modesHighestFirst('Zhaoxin')).toEqual([]);
  });
});

describe('vendors without a ladder, and Hygon', () => {
  it('a Zhaoxin cluster has no mode, and says why', () => {
    const z = clusterMode([{ id: 'zx', vendor: 'Zhaoxin', features: simulatedHostCpu('Skylake-Client-noTSX').features }]);
    expect(z).toMatchObject({ mode: null, vendor: 'Zhaoxin' });
    expect(z.reason).toMatch(/Zhaoxin has no IMC ladder/);
  });

  it('Hygon and AMD hosts never share a mode', () => {
    const hyg = { id: 'hyg', vendor: 'Hygon', features: simulatedHostCpu('Dhyana-v2').features };
    expect(clusterMode([hyg]).mode).toBe('Dhyana-v2');
    const mixed = clusterMode([hyg, host('rome', 'EPYC-Rome')]);
    expect(mixed.mode).toBeNull();
    expect(mixed.reason).toContain('mixed vendors (AMD, Hygon)');
  });
});
