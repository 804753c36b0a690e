import { FlexmigError } from '@flexmig/contracts';
// Test-only helpers: synthetic CPUID dumps built from a feature list (never imported by the library).
import { features as allFeatures, lookupFeatureIndex } from './catalog';
import type { CpuidRow } from './parse-cpuid';

const words = (s: string): number[] => {
  const b = Buffer.alloc(Math.ceil(s.length / 4) * 4);
  b.write(s, 'latin1');
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(b.readUInt32LE(i));
  return out;
};

/** Rows a `cpuid -r` of a CPU with exactly these features (and vendor string, brand) would contain. */
export function synthCpuid(vendorString: string, featureNames: readonly string[], brand = '', eax1 = 0x000306a9): CpuidRow[] {
  const rows = new Map<string, { leaf: number; subleaf: number; eax: number; ebx: number; ecx: number; edx: number }>();
  const row = (leaf: number, subleaf: number) => {
    const k = `${leaf}:${subleaf}`;
    if (!rows.has(k)) rows.set(k, { leaf, subleaf, eax: 0, ebx: 0, ecx: 0, edx: 0 });
    return rows.get(k)!;
  };
  const [b, d, c] = words(vendorString.padEnd(12, ' '));
  Object.assign(row(0, 0), { eax: 0x20, ebx: b, edx: d, ecx: c });
  row(1, 0).eax = eax1;
  row(0x80000000, 0).eax = 0x80000008;
  for (const n of featureNames) {
    const f = allFeatures[lookupFeatureIndex(n)!];
    if (f.msr) continue;
    const r = row(parseInt(f.leaf!, 16), f.subleaf!);
    const reg = f.register!.toLowerCase() as 'eax' | 'ebx' | 'ecx' | 'edx';
    r[reg] = (r[reg] | (1 << f.bit)) >>> 0;
  }
  if (brand) {
    const w = words(brand.padEnd(48, '\0'));
    [0x80000002, 0x80000003, 0x80000004].forEach((leaf, i) => Object.assign(row(leaf, 0), { eax: w[i * 4], ebx: w[i * 4 + 1], ecx: w[i * 4 + 2], edx: w[i * 4 + 3] }));
  }
  const all = [...rows.values()];
  row(0, 0).eax = Math.max(0xd, ...all.filter((r) => r.leaf < 0x80000000).map((r) => r.leaf));
  row(0x80000000, 0).eax = Math.max(0x80000008, ...all.filter((r) => r.leaf >= 0x80000000).map((r) => r.leaf));
  return [...rows.values()];
}

/** The stable code of the FlexmigError that `fn` throws (fails the test if it throws anything else, or nothing). */
export const errorCode = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FlexmigError);
    return (e as FlexmigError).code;
  }
  throw new Error('expected a FlexmigError');
};
