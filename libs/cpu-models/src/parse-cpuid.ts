import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { features as allFeatures, Vendor } from './catalog';
import { vendorFromCpuidString } from './features';
import { ParsedHostCpu } from './parse-cpuinfo';

/** One raw CPUID result; each value is a number or a `0x` hex string (as `cpuid -r` prints them). */
export interface CpuidRow {
  leaf: number | string;
  subleaf: number | string;
  eax: number | string;
  ebx: number | string;
  ecx: number | string;
  edx: number | string;
}

const REGS = ['eax', 'ebx', 'ecx', 'edx'] as const;
const EXTENDED_BASE = 0x80000000;

const malformed = (message: string, details?: Record<string, unknown>) =>
  new FlexmigError(ErrorCode.MalformedCpuid, `malformed CPUID dump: ${message}`, details);

function u32(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v;
  if (typeof v === 'string' && /^0x[0-9a-f]{1,8}$/i.test(v.trim())) return parseInt(v.trim(), 16);
  throw malformed(`${where} must be a 32-bit unsigned number or a 0x hex string, got ${JSON.stringify(v)}`, { where });
}

interface Regs {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const ascii = (...words: number[]): string =>
  words.map((w) => String.fromCharCode(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24)).join('');

// Per feature: where to look, precomputed once.
const locations = allFeatures
  .map((f, i) => ({ i, f }))
  .filter(({ f }) => !f.msr)
  .map(({ i, f }) => ({
    i,
    leaf: parseInt(f.leaf!, 16),
    subleaf: f.subleaf!,
    significant: f.subleafSignificant === true,
    reg: f.register!.toLowerCase() as keyof Regs,
    mask: (1 << f.bit) >>> 0,
  }));

/**
 * Decodes raw CPUID rows: vendor from leaf 0 (EBX, EDX, ECX), family/model from leaf 1, brand string from
 * 0x80000002..4, features from the catalog's bit locations. Rows for leaves above the maximum that leaf 0
 * (or 0x80000000, when present) reports are ignored: CPUID returns unrelated data there. When a leaf
 * appears more than once for the same subleaf (dumps of several CPUs), the first row wins.
 */
export function parseCpuidDump(rows: readonly CpuidRow[]): ParsedHostCpu {
  const { indexes, ...rest } = parseCpuidIndexes(rows);
  return { ...rest, features: indexes.map((i) => allFeatures[i].name) };
}

/** {@link parseCpuidDump} with feature indexes (sorted) instead of names: the evaluation fast path. */
export function parseCpuidIndexes(rows: readonly CpuidRow[]): Omit<ParsedHostCpu, 'features'> & { indexes: number[] } {
  if (!Array.isArray(rows) || rows.length === 0) throw malformed('no rows');
  const table = new Map<string, Regs>();
  const firstOfLeaf = new Map<number, Regs>();
  rows.forEach((row, n) => {
    if (row === null || typeof row !== 'object') throw malformed(`row ${n} is not an object`);
    const leaf = u32(row.leaf, `row ${n} leaf`);
    const subleaf = u32(row.subleaf ?? 0, `row ${n} subleaf`);
    const regs = {} as Regs;
    for (const r of REGS) regs[r] = u32(row[r], `row ${n} ${r}`);
    const key = `${leaf}:${subleaf}`;
    if (!table.has(key)) table.set(key, regs);
    if (!firstOfLeaf.has(leaf)) firstOfLeaf.set(leaf, regs);
  });
  const leaf0 = table.get('0:0') ?? firstOfLeaf.get(0);
  if (!leaf0) throw malformed('leaf 0x0 (vendor and maximum leaf) is missing');
  const vendorString = ascii(leaf0.ebx, leaf0.edx, leaf0.ecx);
  const vendor: Vendor | undefined = vendorFromCpuidString(vendorString);
  if (!vendor) {
    throw new FlexmigError(ErrorCode.UnknownVendor, `unknown CPU vendor "${vendorString.replace(/[^\x20-\x7e]/g, '?')}" in CPUID leaf 0`, {
      vendor: vendorString,
    });
  }
  const maxBasic = leaf0.eax;
  const ext0 = table.get(`${EXTENDED_BASE}:0`) ?? firstOfLeaf.get(EXTENDED_BASE);
  const maxExtended = ext0 && ext0.eax >= EXTENDED_BASE ? ext0.eax : undefined;
  const inRange = (leaf: number) =>
    leaf >= EXTENDED_BASE ? maxExtended === undefined || leaf <= maxExtended : leaf <= maxBasic;

  const found: number[] = [];
  for (const loc of locations) {
    if (!inRange(loc.leaf)) continue;
    // A leaf whose subleaf is not significant (ECX ignored) may be dumped with any ECX: take the first row.
    const regs = table.get(`${loc.leaf}:${loc.subleaf}`) ?? (loc.significant ? undefined : firstOfLeaf.get(loc.leaf));
    if (regs && (regs[loc.reg] & loc.mask) !== 0) found.push(loc.i);
  }
  const out: Omit<ParsedHostCpu, 'features'> & { indexes: number[] } = {
    vendor,
    indexes: found.sort((a, b) => a - b),
    unknownFlags: [],
  };
  const leaf1 = inRange(1) ? table.get('1:0') ?? firstOfLeaf.get(1) : undefined;
  if (leaf1) {
    const baseFamily = (leaf1.eax >>> 8) & 0xf;
    const baseModel = (leaf1.eax >>> 4) & 0xf;
    out.family = baseFamily === 0xf ? baseFamily + ((leaf1.eax >>> 20) & 0xff) : baseFamily;
    out.model = baseFamily === 0x6 || baseFamily === 0xf ? (((leaf1.eax >>> 16) & 0xf) << 4) | baseModel : baseModel;
  }
  const brand = [0x80000002, 0x80000003, 0x80000004].map((l) => (inRange(l) ? table.get(`${l}:0`) ?? firstOfLeaf.get(l) : undefined));
  if (brand.every((r) => r !== undefined)) {
    const s = brand.map((r) => ascii(r!.eax, r!.ebx, r!.ecx, r!.edx)).join('');
    const name = s.replace(/\0.*$/s, '').trim().replace(/\s+/g, ' ');
    if (name) out.modelName = name;
  }
  return out;
}
