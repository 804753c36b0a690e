import { evaluateHost, getBaseline, listBaselines, simulatedCpuinfo, TCG_ABSENT_FEATURES } from '@flexmig/cpu-models';
import { AccelProbe, CpuProbe, effectiveHostCpu, parseCpuString } from './cpu-probe';

// A probe as QEMU answers it: `max` presents `maxFeatures`, and each model of the AMD ladder lacks
// those of its features that `max` lacks.
function accel(kind: 'kvm' | 'tcg', maxFeatures: readonly string[]): AccelProbe {
  const max = new Set(maxFeatures);
  const ladder = listBaselines({ vendor: 'AMD' });
  return { accel: kind, maxFeatures: max, unavailable: new Map(ladder.map((b) => [parseCpuString(b.qemuCpu).model, b.features.filter((f) => !max.has(f))])) };
}

// An AMD host of the Opteron_G2 generation whose /proc/cpuinfo hides `mtrr`, as some clouds' VMs do.
const g2 = getBaseline('Opteron_G2');
const cpuinfoWithoutMtrr = simulatedCpuinfo('Opteron_G2').replace(/ mtrr\b/, '');

describe('effectiveHostCpu: what this host can present to a guest', () => {
  it('given the cpuinfo hides mtrr, when QEMU runs guests under TCG, then the host still claims the modes TCG starts', () => {
    const probe: CpuProbe = { accels: [accel('tcg', g2.features)] };
    const host = effectiveHostCpu(cpuinfoWithoutMtrr, probe);
    expect(host.features).toContain('mtrr');
    expect(evaluateHost({ vendor: host.vendor, features: host.features }).maxImcMode).toBe('Opteron_G2');
  });

  it('given the same host under KVM only, then a bit the physical CPU hides stays hidden (the guest runs on it)', () => {
    const probe: CpuProbe = { accels: [accel('kvm', g2.features)] };
    const host = effectiveHostCpu(cpuinfoWithoutMtrr, probe);
    expect(host.features).not.toContain('mtrr');
    expect(host.droppedByQemu).not.toContain('mtrr'); // never reported, so not dropped by QEMU either
    expect(evaluateHost({ vendor: host.vendor, features: host.features }).maxImcMode).toBeNull();
  });

  it('given KVM and TCG, then the host presents what either can (TCG: G2, above KVM: G1)', () => {
    const probe: CpuProbe = { accels: [accel('kvm', getBaseline('Opteron_G1').features), accel('tcg', g2.features)] };
    const host = effectiveHostCpu(cpuinfoWithoutMtrr, probe);
    expect(host.features).toContain('mtrr');
    expect(host.accelerators).toEqual(['kvm', 'tcg']);
    expect(evaluateHost({ vendor: host.vendor, features: host.features }).maxImcMode).toBe('Opteron_G2');
  });

  it('given an Intel host under TCG, whose `max` lacks vme as QEMU 7.2 answers, then it claims the modes TCG starts (vme is what TCG drops from every model)', () => {
    // as measured on an Intel Xeon VM with QEMU 7.2: `max` under TCG lacks vme, yet `-cpu Conroe,enforce`
    // starts (Conroe's unavailable-features: none), because QEMU turns vme off in its models under TCG
    const westmere = getBaseline('Westmere');
    const max = new Set(westmere.features.filter((f) => !TCG_ABSENT_FEATURES.includes(f)));
    const ladder = listBaselines({ vendor: 'Intel' });
    const tcg: AccelProbe = {
      accel: 'tcg',
      maxFeatures: max,
      unavailable: new Map(ladder.map((b) => [parseCpuString(b.qemuCpu).model, b.features.filter((f) => !max.has(f) && !TCG_ABSENT_FEATURES.includes(f))])),
    };
    const host = effectiveHostCpu(simulatedCpuinfo('Westmere'), { accels: [tcg] });
    expect(host.vendor).toBe('Intel');
    expect(evaluateHost({ vendor: host.vendor, features: host.features }).maxImcMode).toBe('Westmere');
  });

  it('given KVM without pni and ssse3 (a nested KVM, as measured here) beside TCG, then the host claims what TCG runs, not less', () => {
    // the physical CPU and KVM reach SandyBridge but KVM lacks pni and ssse3; TCG reaches Westmere: the union
    // claims SandyBridge, which neither runs, and what KVM lacks must not be taken from what TCG runs
    const westmere = getBaseline('Westmere');
    const sandy = getBaseline('SandyBridge');
    const intel = (kind: 'kvm' | 'tcg', max: Set<string>, absent: readonly string[] = []): AccelProbe => ({
      accel: kind,
      maxFeatures: max,
      unavailable: new Map(listBaselines({ vendor: 'Intel' }).map((b) => [parseCpuString(b.qemuCpu).model, b.features.filter((f) => !max.has(f) && !absent.includes(f))])),
    });
    const tcg = intel('tcg', new Set(westmere.features.filter((f) => !TCG_ABSENT_FEATURES.includes(f))), TCG_ABSENT_FEATURES);
    const kvm = intel('kvm', new Set(sandy.features.filter((f) => f !== 'pni' && f !== 'ssse3')));
    const alone = effectiveHostCpu(simulatedCpuinfo('SandyBridge'), { accels: [tcg] });
    const both = effectiveHostCpu(simulatedCpuinfo('SandyBridge'), { accels: [kvm, tcg] });
    expect(evaluateHost({ vendor: both.vendor, features: both.features }).maxImcMode).toBe('Westmere');
    expect(both.features).toEqual(expect.arrayContaining(['pni', 'ssse3']));
    expect(evaluateHost({ vendor: alone.vendor, features: alone.features }).maxImcMode).toBe('Westmere');
  });
});
