import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { clusterMode, planCluster, simulatedHostCpu } from './index';

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

  it('a single host is its own cluster; without it there is none', () => {
    const plan = planCluster([host('solo', 'EPYC-Rome')]);
    expect(plan).toMatchObject({ mode: 'EPYC-Rome', holdingDown: ['solo'], withoutHost: [{ hostId: 'solo', mode: null }] });
  });
});
