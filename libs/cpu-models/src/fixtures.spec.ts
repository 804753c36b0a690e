import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateHost } from './index';

// Real /proc/cpuinfo and CPUID dumps collected in ../fixtures (sources in ../fixtures/SOURCES.md).
// expected.json's `expectedMode` is the strict libvirt reading (no syscall inference, hypervisor bits
// and MSR bits counted as missing). This library's documented policy differs on exactly those points,
// and expected.json names the outcome of each as an alternative; the policy picks them here.
const POLICY_ALTERNATIVES = [
  'ifSyscallInferredAndMsrFeaturesIgnored', // Intel SYSCALL rule + MSR features not checkable
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
