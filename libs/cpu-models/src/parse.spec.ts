import { ErrorCode } from '@flexmig/contracts';
import { getBaseline, parseCpuidDump, parseCpuinfo, simulatedCpuinfo, simulatedHostCpu } from './index';
import { errorCode as code, synthCpuid } from './test-helpers';


// Trimmed from a real Xeon E5-2680 v2 (IvyBridge-EP) /proc/cpuinfo, two processors.
const ivyCpuinfo = `processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 62
model name\t: Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz
stepping\t: 4
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm cpuid_fault epb pti ssbd ibrs ibpb stibp tpr_shadow vnmi flexpriority ept vpid fsgsbase smep erms xsaveopt dtherm ida arat pln pts md_clear flush_l1d
vmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_1gb flexpriority apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple
bugs\t\t: cpu_meltdown spectre_v1 spectre_v2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu
`;

describe('parseCpuinfo', () => {
  it('reads the first processor block', () => {
    const p = parseCpuinfo(ivyCpuinfo);
    expect(p).toMatchObject({ vendor: 'Intel', modelName: 'Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz', family: 6, model: 62 });
    for (const f of ['sse4.2', 'pclmuldq', 'tsc-deadline', 'ds_cpl', 'ds', 'f16c', 'rdrand', 'vmx']) expect(p.features).toContain(f);
    expect(p.unknownFlags).toEqual(expect.arrayContaining(['rep_good', 'pti', 'constant_tsc']));
    expect(p.features).toEqual([...p.features].sort());
  });

  it('maps Linux synthetic speculation flags per vendor', () => {
    const intel = parseCpuinfo(ivyCpuinfo);
    expect(intel.features).toEqual(expect.arrayContaining(['spec-ctrl', 'stibp', 'ssbd']));
    expect(intel.features).not.toContain('ibpb'); // the AMD 0x80000008 bit
    const amd = parseCpuinfo('vendor_id : AuthenticAMD\nflags : fpu svm ibpb ibrs stibp ssbd\n');
    expect(amd.features).toEqual(['amd-ssbd', 'amd-stibp', 'fpu', 'ibpb', 'ibrs', 'svm']);
  });

  it.each([
    ['empty text', ErrorCode.MalformedCpuinfo, ''],
    ['no key: value lines', ErrorCode.MalformedCpuinfo, 'hello world\n'],
    ['no vendor_id (arm64)', ErrorCode.MalformedCpuinfo, 'processor : 0\nFeatures : fp asimd\nCPU implementer : 0x41\n'],
    ['no flags', ErrorCode.MalformedCpuinfo, 'processor : 0\nvendor_id : GenuineIntel\n'],
    ['non-numeric family', ErrorCode.MalformedCpuinfo, 'vendor_id : GenuineIntel\ncpu family : six\nflags : fpu\n'],
    ['unknown vendor', ErrorCode.UnknownVendor, 'vendor_id : CyrixInstead\nflags : fpu\n'],
  ])('%s → %s', (_, expected, text) => {
    expect(code(() => parseCpuinfo(text))).toBe(expected);
  });

  it('reads back what simulatedCpuinfo writes, for every IMC mode', () => {
    for (const name of ['Merom', 'IvyBridge', 'Cascadelake', 'SapphireRapids', 'Opteron_G5', 'EPYC-Milan', 'EPYC-Genoa']) {
      const sim = simulatedHostCpu(name);
      const p = parseCpuinfo(simulatedCpuinfo(name));
      expect(p.vendor).toBe(sim.vendor);
      expect(p.modelName).toBe(sim.modelName);
      expect(p.features).toEqual(sim.features);
    }
  });
});

describe('parseCpuidDump', () => {
  it('decodes vendor, family/model, brand and features from raw rows', () => {
    const ivy = getBaseline('IvyBridge').features;
    const rows = synthCpuid('GenuineIntel', [...ivy, 'vmx'], 'Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz', 0x000306e4);
    const p = parseCpuidDump(rows);
    expect(p.vendor).toBe('Intel');
    expect(p.family).toBe(6);
    expect(p.model).toBe(62);
    expect(p.modelName).toBe('Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz');
    expect(p.features).toEqual([...ivy, 'vmx'].sort());
  });

  it('accepts 0x hex strings as well as numbers', () => {
    const rows = synthCpuid('AuthenticAMD', ['fpu', 'svm', 'sse4a']).map((r) => ({
      leaf: '0x' + r.leaf.toString(16),
      subleaf: r.subleaf,
      eax: '0x' + r.eax.toString(16),
      ebx: r.ebx,
      ecx: '0x' + r.ecx.toString(16).toUpperCase(),
      edx: r.edx,
    }));
    expect(parseCpuidDump(rows)).toMatchObject({ vendor: 'AMD', features: ['fpu', 'sse4a', 'svm'] });
  });

  it('ignores leaves above the reported maximum', () => {
    const rows = synthCpuid('GenuineIntel', ['fpu', 'avx2']);
    rows.find((r) => r.leaf === 0)!.eax = 1; // max basic leaf 1: leaf 7 is garbage
    expect(parseCpuidDump(rows).features).toEqual(['fpu']);
  });

  it('decodes the family of an AMD Zen part (extended family)', () => {
    expect(parseCpuidDump(synthCpuid('AuthenticAMD', ['fpu'], '', 0x00a10f11)).family).toBe(0x19);
  });

  it.each([
    ['no rows', ErrorCode.MalformedCpuid, [] as unknown[]],
    ['no leaf 0', ErrorCode.MalformedCpuid, [{ leaf: 1, subleaf: 0, eax: 0, ebx: 0, ecx: 0, edx: 1 }]],
    ['a non-hex string', ErrorCode.MalformedCpuid, [{ leaf: 0, subleaf: 0, eax: 'ten', ebx: 0, ecx: 0, edx: 0 }]],
    ['a negative number', ErrorCode.MalformedCpuid, [{ leaf: 0, subleaf: 0, eax: -1, ebx: 0, ecx: 0, edx: 0 }]],
    ['a 33-bit value', ErrorCode.MalformedCpuid, [{ leaf: 0, subleaf: 0, eax: 0x100000000, ebx: 0, ecx: 0, edx: 0 }]],
    ['a missing register', ErrorCode.MalformedCpuid, [{ leaf: 0, subleaf: 0, eax: 0, ebx: 0, ecx: 0 }]],
    ['an unknown vendor', ErrorCode.UnknownVendor, synthCpuid('CyrixInstead', ['fpu'])],
  ])('%s → %s', (_, expected, rows) => {
    expect(code(() => parseCpuidDump(rows as never))).toBe(expected);
  });
});
