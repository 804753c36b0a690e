import fc from 'fast-check';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { catalog, getBaseline, getFeature, listBaselines, normalizeFeatureNames } from './index';

const expectCode = (fn: () => unknown, code: string) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FlexmigError);
    expect((e as FlexmigError).code).toBe(code);
    return e as FlexmigError;
  }
  throw new Error(`expected ${code}`);
};

const subset = (a: readonly string[], b: readonly string[]) => a.every((f) => b.includes(f));

describe('catalog', () => {
  it('names its sources', () => {
    const s = catalog.source as { libvirt: { version: string }; psabi: { commit: string } };
    expect(s.libvirt.version).toBe('12.8.0');
    expect(s.psabi.commit).toBe('ab2062ad5653913c39124548943b1177330e34c8');
  });

  it('has every libvirt feature with its CPUID location or MSR index', () => {
    expect(catalog.features).toHaveLength(400);
    expect(catalog.features.filter((f) => f.msr)).toHaveLength(119);
    expect(getFeature('sse4.2')).toMatchObject({ leaf: '0x00000001', subleaf: 0, register: 'ECX', bit: 20, linuxName: 'sse4_2', msr: false });
    expect(getFeature('fsgsbase')).toMatchObject({ leaf: '0x00000007', subleaf: 0, register: 'EBX', bit: 0 });
    expect(getFeature('rdctl-no')).toMatchObject({ msr: true, msrIndex: '0x0000010a', bit: 0, linuxName: null });
    expect(getFeature('spec-ctrl')).toMatchObject({ linuxName: null, linuxNameSource: 'not-printed' });
  });

  it.each([
    ['pclmulqdq', 'pclmuldq'], // Linux and QEMU spelling
    ['sse4_1', 'sse4.1'],
    ['sse4-1', 'sse4.1'],
    ['tsc_deadline_timer', 'tsc-deadline'],
    ['sse3', 'pni'],
    ['lahf-lm', 'lahf_lm'],
    ['avx512_vnni', 'avx512vnni'],
    ['cqm', 'cmt'],
    ['SSE4_2', 'sse4.2'],
  ])('getFeature(%s) is %s', (spelling, canonical) => {
    expect(getFeature(spelling).name).toBe(canonical);
  });

  it('getFeature of an unknown name is NOT_FOUND', () => {
    expectCode(() => getFeature('warp-drive'), ErrorCode.NotFound);
  });

  it('normalizeFeatureNames maps every spelling to libvirt names and keeps the unknown ones', () => {
    expect(normalizeFeatureNames(['sse4_2', 'pclmulqdq', 'rep_good', 'sse4.2', 'tsc_deadline_timer'])).toEqual({
      features: ['pclmuldq', 'sse4.2', 'tsc-deadline'],
      unknown: ['rep_good'],
    });
  });
});

describe('baselines', () => {
  it('has the five ladders in order', () => {
    expect(listBaselines({ ladder: 'intel' }).map((b) => b.name)).toEqual([
      'Merom', 'Penryn', 'Nehalem', 'Westmere', 'SandyBridge', 'IvyBridge',
      'Haswell-noTSX', 'Haswell', 'Broadwell-noTSX', 'Broadwell', 'Skylake-Client-noTSX', 'Skylake-Client',
      'Skylake-Server-noTSX', 'Skylake-Server', 'Cascadelake-noTSX', 'Cascadelake', 'Icelake-noTSX', 'Icelake',
      'SapphireRapids-noTSX', 'SapphireRapids', 'GraniteRapids-noTSX', 'GraniteRapids', 'DiamondRapids-noTSX', 'DiamondRapids',
    ]);
    expect(listBaselines({ vendor: 'amd' }).map((b) => b.name)).toEqual([
      'Opteron_G1', 'Opteron_G2', 'Opteron_G3', 'Opteron_G4', 'Opteron_G5', 'EPYC', 'EPYC-Rome', 'EPYC-Milan', 'EPYC-Genoa', 'EPYC-Turin',
    ]);
    expect(listBaselines({ ladder: 'intel-ecore' }).map((b) => b.name)).toEqual(['Denverton', 'Snowridge', 'SierraForest', 'ClearwaterForest']);
    expect(listBaselines({ vendor: 'HygonGenuine' }).map((b) => b.name)).toEqual(['Dhyana', 'Dhyana-v2']);
    expect(listBaselines({ ladder: 'psabi' }).map((b) => b.name)).toEqual(['x86-64-v1', 'x86-64-v2', 'x86-64-v3', 'x86-64-v4']);
    expect(listBaselines()).toHaveLength(44);
    expect(listBaselines({ vendor: 'Zhaoxin' })).toEqual([]);
  });

  it.each([
    ['conroe', 'Merom'],
    ['MEROM', 'Merom'],
    ['Skylake', 'Skylake-Server'],
    ['Cascadelake-Server', 'Cascadelake'],
    ['Icelake-Server', 'Icelake'],
    ['Cascadelake-Server-noTSX', 'Cascadelake-noTSX'],
    ['icelake-server-notsx', 'Icelake-noTSX'],
    ['x86-64', 'x86-64-v1'],
  ])('getBaseline(%s) is %s', (alias, name) => {
    expect(getBaseline(alias).name).toBe(name);
  });

  it('an unknown baseline is UNKNOWN_CPU_MODEL listing the valid names', () => {
    const e = expectCode(() => getBaseline('Pentium4'), ErrorCode.UnknownCpuModel);
    expect(e.message).toContain('IvyBridge');
    expect(e.details?.valid).toContain('EPYC-Genoa');
  });

  it('an unknown vendor filter is UNKNOWN_VENDOR', () => {
    expectCode(() => listBaselines({ vendor: 'Cyrix' }), ErrorCode.UnknownVendor);
  });

  // The libvirt files are not cumulative; the modes are.
  it('carries libvirt omissions upward and drops lineage breaks', () => {
    const haswell = getBaseline('Haswell');
    for (const f of ['f16c', 'rdrand', 'vme', 'abm', 'xsaveopt']) expect(haswell.features).toContain(f);
    expect(getBaseline('Merom').features).not.toContain('cx16'); // libvirt's Conroe lacks it; Penryn adds it
    expect(getBaseline('Penryn').features).toContain('cx16');
    for (const name of ['Opteron_G4', 'Opteron_G5', 'EPYC']) {
      for (const f of ['fma4', 'tbm', 'xop']) expect(getBaseline(name).features).not.toContain(f);
    }
    expect(getBaseline('Opteron_G5').qemuCpu).toBe('Opteron_G5,-fma4,-tbm,-xop');
    expect(getBaseline('Westmere').features).toContain('pclmuldq'); // QEMU's -cpu Westmere has it (caveat 1)
  });

  it('is cumulative along every ladder (property over pairs of modes)', () => {
    const ladders = ['intel', 'amd', 'psabi'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...ladders), fc.nat(), fc.nat(), (ladder, i, j) => {
        const modes = listBaselines({ ladder });
        const a = modes[i % modes.length];
        const b = modes[j % modes.length];
        // "a is at most b" by ladder position: an older generation that is not a TSX mode under a noTSX
        // mode, or the noTSX sibling of b.
        const below = a.order < b.order ? !(a.tsx === true && b.tsx === false) : a.order === b.order && a.tsx === false && b.tsx === true;
        if (below) expect(subset(a.features, b.features)).toBe(true);
        if (a.order === b.order && a.tsx === b.tsx) expect(a.name).toBe(b.name);
      }),
      { numRuns: 2000 },
    );
  });

  it('a TSX mode and the next generation without TSX are incomparable (a branch, not a chain)', () => {
    const haswell = getBaseline('Haswell').features;
    const bdwNoTsx = getBaseline('Broadwell-noTSX').features;
    expect(subset(haswell, bdwNoTsx)).toBe(false);
    expect(subset(bdwNoTsx, haswell)).toBe(false);
    expect(getBaseline('Haswell').features.filter((f) => !getBaseline('Haswell-noTSX').features.includes(f))).toEqual(['hle', 'rtm']);
  });

  it('every mode presents at least its libvirt model (minus lineage drops)', () => {
    for (const b of listBaselines()) {
      expect(b.features.length).toBeGreaterThan(0);
      expect(b.qemuCpu.startsWith(b.qemuModel)).toBe(true);
    }
    expect(getBaseline('SapphireRapids').msrFeatures).toEqual(['ibrs-all', 'mds-no', 'pschange-mc-no', 'rdctl-no', 'skip-l1dfl-vmentry', 'taa-no']);
    expect(getBaseline('Skylake-Client-noTSX').qemuCpu).toBe('Skylake-Client-noTSX-IBRS,-mpx,-spec-ctrl');
  });
});
