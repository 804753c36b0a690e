import fc from 'fast-check';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import {
  assertCpuCompatible,
  catalog,
  cpuidMasks,
  evaluateHost,
  getBaseline,
  getFeature,
  listBaselines,
  simulatedCpuinfo,
  simulatedHostCpu,
  verdict,
  verifyMode,
} from './index';
import { errorCode as code, synthCpuid } from './test-helpers';

const without = (xs: readonly string[], ...drop: string[]) => xs.filter((x) => !drop.includes(x));

describe('evaluateHost', () => {
  it('gives every simulated generation its own mode, from cpuinfo, CPUID and a feature list', () => {
    for (const b of listBaselines().filter((x) => x.kind === 'imc')) {
      const sim = simulatedHostCpu(b.name);
      expect(evaluateHost({ cpuinfo: simulatedCpuinfo(b.name) }).maxImcMode).toBe(b.name);
      expect(evaluateHost({ features: sim.features, vendor: sim.vendor }).maxImcMode).toBe(b.name);
      const vendorString = catalog.vendors.find((v) => v.name === sim.vendor)!.cpuidVendor;
      expect(evaluateHost({ cpuid: synthCpuid(vendorString, sim.features) }).maxImcMode).toBe(b.name);
    }
  });

  it('reports the ladder with missing features and the psABI level', () => {
    const e = evaluateHost({ cpuinfo: simulatedCpuinfo('Haswell') });
    expect(e).toMatchObject({ vendor: 'Intel', maxImcMode: 'Haswell', psabiLevel: 'x86-64-v3' });
    expect(e.ladder.find((s) => s.mode === 'Broadwell')).toMatchObject({ supported: false, missing: ['3dnowprefetch', 'adx', 'rdseed', 'smap'] });
    expect(e.ladder.find((s) => s.mode === 'IvyBridge')).toMatchObject({ supported: true, missing: [] });
    expect(evaluateHost({ cpuinfo: simulatedCpuinfo('IvyBridge') }).psabiLevel).toBe('x86-64-v2');
    expect(evaluateHost({ cpuinfo: simulatedCpuinfo('Skylake-Server') }).psabiLevel).toBe('x86-64-v4');
  });

  it('a host without TSX gets the -noTSX mode of its generation', () => {
    const icx = simulatedHostCpu('Icelake');
    expect(evaluateHost({ features: without(icx.features, 'hle', 'rtm'), vendor: 'Intel' }).maxImcMode).toBe('Icelake-noTSX');
    // libvirt has no -noTSX model from Sapphire Rapids on; the mode is derived (README decision 2)
    const spr = simulatedHostCpu('SapphireRapids');
    expect(evaluateHost({ features: without(spr.features, 'rtm'), vendor: 'Intel' }).maxImcMode).toBe('SapphireRapids-noTSX');
    const gnr = simulatedHostCpu('GraniteRapids');
    expect(evaluateHost({ features: without(gnr.features, 'hle', 'rtm'), vendor: 'Intel' }).maxImcMode).toBe('GraniteRapids-noTSX');
    expect(getBaseline('GraniteRapids-noTSX').qemuCpu).toBe('GraniteRapids,-hle,-rtm');
  });

  it('SYSCALL: an Intel dump without syscall but with lm is not failed for it (32-bit CPUID tool)', () => {
    const ivy = without(simulatedHostCpu('IvyBridge').features, 'syscall');
    const e = evaluateHost({ cpuid: synthCpuid('GenuineIntel', ivy) });
    expect(e.maxImcMode).toBe('IvyBridge');
    expect(e.assumed).toContain('syscall');
    expect(e.features).not.toContain('syscall');
    // without lm there is nothing to infer it from
    expect(evaluateHost({ features: without(ivy, 'lm'), vendor: 'Intel' }).maxImcMode).toBeNull();
    // AMD reports syscall in every mode, so its absence is real
    const g3 = without(simulatedHostCpu('Opteron_G3').features, 'syscall');
    expect(evaluateHost({ features: g3, vendor: 'AMD' }).maxImcMode).toBeNull();
  });

  it('hypervisor-supplied bits (x2apic, tsc-deadline, arat…) count as present', () => {
    const snb = without(simulatedHostCpu('SandyBridge').features, 'x2apic', 'tsc-deadline', 'arat');
    const e = evaluateHost({ features: snb, vendor: 'Intel' });
    expect(e.maxImcMode).toBe('SandyBridge');
    expect(e.assumed).toEqual(expect.arrayContaining(['arat', 'tsc-deadline', 'x2apic']));
  });

  it('infers the vendor of a bare feature list from vmx/svm only', () => {
    expect(evaluateHost({ features: simulatedHostCpu('EPYC').features })).toMatchObject({ vendor: 'AMD', vendorInferred: true, maxImcMode: 'EPYC' });
    expect(evaluateHost({ features: simulatedHostCpu('Nehalem').features })).toMatchObject({ vendor: 'Intel', maxImcMode: 'Nehalem' });
    expect(code(() => evaluateHost({ features: ['fpu', 'sse2'] }))).toBe(ErrorCode.UnknownVendor);
  });

  it('errors: empty feature list, unknown vendor, malformed input', () => {
    expect(code(() => evaluateHost({ features: [], vendor: 'Intel' }))).toBe(ErrorCode.EmptyFeatureList);
    expect(code(() => evaluateHost({ features: ['rep_good', 'nopl'], vendor: 'Intel' }))).toBe(ErrorCode.EmptyFeatureList);
    expect(code(() => evaluateHost({ cpuinfo: 'vendor_id : GenuineIntel\nflags :\n' }))).toBe(ErrorCode.EmptyFeatureList);
    expect(code(() => evaluateHost({ features: ['fpu'], vendor: 'VIA' }))).toBe(ErrorCode.UnknownVendor);
    expect(code(() => evaluateHost({ cpuinfo: 'nonsense' }))).toBe(ErrorCode.MalformedCpuinfo);
    expect(code(() => evaluateHost({ cpuid: [] }))).toBe(ErrorCode.MalformedCpuid);
  });

  it('a Hygon host gets a mode of the Hygon ladder, never an AMD one', () => {
    // libvirt's EPYC-Rome model lists every feature of Dhyana, but not Dhyana-v2's xsaves
    const e = evaluateHost({ features: simulatedHostCpu('EPYC-Rome').features, vendor: 'HygonGenuine' });
    expect(e).toMatchObject({ vendor: 'Hygon', maxImcMode: 'Dhyana', psabiLevel: 'x86-64-v3' });
    expect(e.ladder.map((s) => s.mode)).toEqual(['Dhyana', 'Dhyana-v2']);
    expect(e.ladder[1]).toMatchObject({ supported: false, missing: ['xsaves'] });
    expect(verdict('Dhyana', { vendor: 'AMD', features: simulatedHostCpu('EPYC-Genoa').features })).toMatchObject({ compatible: false, vendorMismatch: true });
    expect(verdict('EPYC', { vendor: 'Hygon', features: simulatedHostCpu('Dhyana-v2').features })).toMatchObject({ compatible: false, vendorMismatch: true });
  });

  it.each([
    ['CentaurHauls (VIA/Zhaoxin)', 'CentaurHauls'],
    ['"  Shanghai  " (Zhaoxin)', '  Shanghai  '],
  ])('a %s host: no IMC mode, a reason that says passthrough only, and still a psABI level', (_, vendorString) => {
    const features = simulatedHostCpu('Skylake-Client-noTSX').features;
    for (const e of [
      evaluateHost({ cpuid: synthCpuid(vendorString, features) }),
      evaluateHost({ cpuinfo: `vendor_id\t: ${vendorString}\nflags\t\t: ${features.map((f) => getFeature(f).linuxName ?? '').join(' ')}\n` }),
      evaluateHost({ features, vendor: 'Zhaoxin' }),
    ]) {
      expect(e).toMatchObject({ vendor: 'Zhaoxin', maxImcMode: null, ladder: [], psabiLevel: 'x86-64-v3' });
      expect(e.reason).toMatch(/Zhaoxin has no IMC ladder.*only join a cluster whose IMC mode is off \(host passthrough\)/);
      expect(e.notes).toContain(e.reason);
    }
  });

  it('the highest mode contains every mode the host supports (property)', () => {
    const universe = [...new Set(listBaselines({ ladder: 'intel' }).flatMap((b) => b.features))].sort();
    fc.assert(
      fc.property(fc.constantFrom(...listBaselines({ ladder: 'intel' }).map((b) => b.name)), fc.subarray(universe, { maxLength: 12 }), (mode, drop) => {
        const features = [...without(simulatedHostCpu(mode).features, ...drop), 'vmx'];
        const e = evaluateHost({ features, vendor: 'Intel' });
        // the main ladder's supported modes; an intel-ecore answer is only taken where it contains them all
        const supported = e.ladder.filter((s) => s.supported).map((s) => getBaseline(s.mode)).filter((b) => b.ladder === 'intel');
        if (e.maxImcMode === null) expect(supported).toHaveLength(0);
        else {
          const max = getBaseline(e.maxImcMode).features;
          for (const s of supported) expect(s.features.every((f) => max.includes(f))).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('verdict', () => {
  it('refuses a Westmere VM on a Penryn host, naming what is missing', () => {
    const penryn = simulatedHostCpu('Penryn');
    const v = verdict('Westmere', penryn);
    expect(v).toMatchObject({ compatible: false, vendorMismatch: false, missing: ['aes', 'pclmuldq', 'popcnt', 'sse4.2'] });
    expect(v.reason).toBe('host lacks 4 feature(s) of Westmere: aes, pclmuldq, popcnt, sse4.2');
  });

  it('accepts a VM on a newer host of the same vendor and refuses another vendor', () => {
    expect(verdict('IvyBridge', simulatedHostCpu('SapphireRapids'))).toMatchObject({ compatible: true, missing: [] });
    expect(verdict('Opteron_G5', simulatedHostCpu('EPYC'))).toMatchObject({ compatible: true }); // thanks to the fma4/tbm/xop rule
    const v = verdict('Nehalem', simulatedHostCpu('EPYC-Genoa'));
    expect(v).toMatchObject({ compatible: false, vendorMismatch: true, missing: [] });
    expect(v.reason).toContain('Intel baseline');
    expect(verdict('x86-64-v3', simulatedHostCpu('EPYC'))).toMatchObject({ compatible: true, vendorMismatch: false });
  });

  it('lists MSR features as unchecked instead of failing on them', () => {
    const v = verdict('SapphireRapids', simulatedHostCpu('SapphireRapids'));
    expect(v.compatible).toBe(true);
    expect(v.unchecked).toContain('rdctl-no');
  });

  it('assertCpuCompatible throws CPU_INCOMPATIBLE with the missing features', () => {
    expect(() => assertCpuCompatible('IvyBridge', simulatedHostCpu('Haswell'))).not.toThrow();
    try {
      assertCpuCompatible('Haswell', simulatedHostCpu('IvyBridge'));
      throw new Error('expected a throw');
    } catch (e) {
      expect((e as FlexmigError).code).toBe(ErrorCode.CpuIncompatible);
      expect((e as FlexmigError).details?.missing).toEqual(expect.arrayContaining(['avx2', 'hle', 'rtm']));
    }
    expect(code(() => verdict('Pentium4', simulatedHostCpu('Haswell')))).toBe(ErrorCode.UnknownCpuModel);
  });

  it('verifyMode reports each host', () => {
    const r = verifyMode('Haswell', [
      { id: 'a', ...simulatedHostCpu('Broadwell') },
      { id: 'b', ...simulatedHostCpu('IvyBridge') },
    ]);
    expect(r.pass).toBe(false);
    expect(r.hosts[0]).toMatchObject({ hostId: 'a', pass: true, missing: [] });
    expect(r.hosts[1]).toMatchObject({ hostId: 'b', pass: false });
    expect(r.hosts[1].missing).toEqual(expect.arrayContaining(['avx2', 'bmi1', 'bmi2', 'fma', 'hle', 'invpcid', 'movbe', 'pcid', 'rtm']));
  });
});

describe('cpuidMasks', () => {
  it('IvyBridge on a Haswell host hides avx2, bmi1/2, fma, movbe, hle, rtm…', () => {
    const masks = cpuidMasks('IvyBridge', simulatedHostCpu('Haswell').features);
    const leaf7 = masks.find((m) => m.leaf === '0x00000007' && m.subleaf === 0 && m.register === 'EBX')!;
    // host EBX: fsgsbase(0) bmi1(3) hle(4) avx2(5) smep(7) bmi2(8) erms(9) invpcid(10) rtm(11)
    expect(leaf7).toEqual({
      leaf: '0x00000007', subleaf: 0, register: 'EBX',
      hostBits: '0x00000fb9', baselineBits: '0x00000281', mask: '0x00000281',
    });
    const leaf1 = masks.find((m) => m.leaf === '0x00000001' && m.register === 'ECX')!;
    const fma = 1 << 12;
    const movbe = 1 << 22;
    expect(parseInt(leaf1.hostBits, 16) & (fma | movbe)).toBe(fma | movbe);
    expect(parseInt(leaf1.mask, 16) & (fma | movbe)).toBe(0);
    for (const m of masks) expect(parseInt(m.mask, 16) & ~parseInt(m.hostBits, 16)).toBe(0);
  });

  it('rows are sorted and formatted as 0x%08x', () => {
    const masks = cpuidMasks('Westmere', simulatedHostCpu('Westmere').features);
    for (const m of masks) expect(m.mask).toMatch(/^0x[0-9a-f]{8}$/);
    expect(masks.map((m) => m.leaf)).toEqual([...masks.map((m) => m.leaf)].sort());
  });
});
