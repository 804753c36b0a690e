import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterMode, evaluateHost } from './index';

// Real /proc/cpuinfo and CPUID dumps collected in ../fixtures (sources in ../fixtures/SOURCES.md).
// expected.json's `expectedMode` is the strict libvirt reading (no syscall inference, hypervisor bits
// and MSR bits counted as missing). This library's documented policy differs on exactly those points,
// and expected.json names the outcome of each as an alternative; the policy picks them here.
const POLICY_ALTERNATIVES = [
  'ifSyscallInferredAndMsrFeaturesIgnored', // Intel SYSCALL rule + MSR features not checkable
  'ifMsrFeaturesIgnored', // MSR features not checkable (README decision 3)
  'ifSyscallInferredFromLm', // Intel SYSCALL rule
  'ifAratSupplied', // hypervisor-supplied bits count as present
] as const;

interface Expectation {
  file: string;
  format: 'cpuid' | 'cpuinfo';
  vendor: string;
  expectedMode: string | null;
  alternatives?: Record<string, string | null>;
}

const dir = join(__dirname, '..', 'fixtures');
const expectedFile = join(dir, 'expected.json');
const fixtures: Expectation[] = existsSync(expectedFile) ? JSON.parse(readFileSync(expectedFile, 'utf8')) : [];

function policyMode(e: Expectation): string | null {
  const alts = e.alternatives ?? {};
  const unknown = Object.keys(alts).filter((k) => !(POLICY_ALTERNATIVES as readonly string[]).includes(k));
  if (unknown.length) throw new Error(`${e.file}: alternative(s) ${unknown.join(', ')} not mapped to this library's policy`);
  for (const k of POLICY_ALTERNATIVES) if (k in alts) return alts[k];
  return e.expectedMode;
}

(fixtures.length ? describe : describe.skip)('real CPU fixtures', () => {
  it.each(fixtures.map((e) => [e.file, e] as const))('%s', (file, e) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const result = e.format === 'cpuid' ? evaluateHost({ cpuid: JSON.parse(text) }) : evaluateHost({ cpuinfo: text });
    expect(result.vendor).toBe(e.vendor);
    expect(result.maxImcMode).toBe(policyMode(e));
    // a vendor without a ladder gets no mode list and a reason that says what the host can still join
    if (e.vendor === 'Zhaoxin') {
      expect(result.ladder).toEqual([]);
      expect(result.reason).toContain('only join a cluster whose IMC mode is off');
    }
  });
});

if (!fixtures.length) {
  console.log(`cpu-models: no fixtures at ${expectedFile}; real-CPU checks skipped`);
}

// Clusters of the real hosts above. Expected modes from the same independent reading as expected.json
// (dump bits against the model files): a mode is common to hosts exactly when each host has all its bits.
describe('clusters of real hosts', () => {
  const real = (file: string, id = file) => {
    const e = evaluateHost({ cpuid: JSON.parse(readFileSync(join(dir, file), 'utf8')) });
    return { id, vendor: e.vendor, features: e.features };
  };
  const gnr = 'intel-graniterapids-xeon-6788p.cpuid.json';
  const srf = 'intel-sierraforest-xeon-6731e.cpuid.json';
  const emr = 'intel-emeraldrapids-xeon-gold-6530.cpuid.json';
  const hygon = 'hygon-dhyana-c86-7185-libvirt.cpuid.json';
  const genoa = 'amd-zen4-epyc-9124.cpuid.json';
  const present = [gnr, srf, emr, hygon, genoa].every((f) => existsSync(join(dir, f)));

  (present ? it : it.skip)('Granite Rapids + Sierra Forest (Xeon 6 P- and E-cores) → the main-ladder mode both have', () => {
    // SRF has no AVX-512 (main ladder: Skylake-Client-noTSX); GNR lacks SierraForest's avx-ifma,
    // avx-ne-convert, avx-vnni-int8 and cmpccxadd, so the E-core ladder reaches only Snowridge, which has no
    // AVX and so does not contain Skylake-Client-noTSX (decision 8).
    expect(clusterMode([real(gnr), real(srf)])).toMatchObject({ mode: 'Skylake-Client-noTSX', vendor: 'Intel' });
  });

  (present ? it : it.skip)('Sierra Forest hosts alone → SierraForest (E-core ladder)', () => {
    expect(clusterMode([real(srf, 'srf-1'), real(srf, 'srf-2')])).toMatchObject({ mode: 'SierraForest', vendor: 'Intel' });
  });

  (present ? it : it.skip)('a Hygon and an AMD host share no mode, although the Genoa has every Dhyana-v2 bit', () => {
    const mixed = clusterMode([real(hygon), real(genoa)]);
    expect(mixed.mode).toBeNull();
    expect(mixed.reason).toContain('mixed vendors');
    expect(clusterMode([real(hygon, 'h1'), real(hygon, 'h2')])).toMatchObject({ mode: 'Dhyana-v2', vendor: 'Hygon' });
  });

  (present ? it : it.skip)('Emerald Rapids + Granite Rapids, both with TSX off → SapphireRapids-noTSX', () => {
    expect(clusterMode([real(emr), real(gnr)]).mode).toBe('SapphireRapids-noTSX');
  });
});
