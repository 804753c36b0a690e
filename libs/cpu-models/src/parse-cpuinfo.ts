import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { catalog, features as allFeatures, lookupFeatureIndex, Vendor } from './catalog';
import { vendorFromCpuidString } from './features';

/** What a host reports about its CPU, after parsing; `features` are canonical (libvirt) names, sorted. */
export interface ParsedHostCpu {
  vendor: Vendor;
  modelName?: string;
  family?: number;
  model?: number;
  features: string[];
  /** Flags that name no CPUID/MSR feature (Linux synthetic flags such as `rep_good`, `cpuid`, `pti`). */
  unknownFlags: string[];
}

const malformed = (message: string, details?: Record<string, unknown>) =>
  new FlexmigError(ErrorCode.MalformedCpuinfo, `malformed /proc/cpuinfo: ${message}`, details);

/**
 * Parses the first processor block of x86 /proc/cpuinfo text: `vendor_id`, `model name`, `cpu family`,
 * `model` and the `flags` line (the `vmx flags` line is ignored: VMX capabilities are MSR features).
 * Linux's synthetic speculation flags are mapped to the CPUID bit they stand for on that vendor
 * (catalog policy.cpuinfoSynthetic; e.g. Intel `ibpb` → `spec-ctrl`, AMD `stibp` → `amd-stibp`).
 */
export function parseCpuinfo(text: string): ParsedHostCpu {
  const { indexes, ...rest } = parseCpuinfoIndexes(text);
  return { ...rest, features: indexes.map((i) => allFeatures[i].name) };
}

/** Synthetic-flag tables as Maps, per vendor (built once). */
const syntheticByVendor = new Map<string, Map<string, number[]>>(
  Object.entries(catalog.policy.cpuinfoSynthetic).map(([vendor, table]) => [
    vendor,
    new Map(Object.entries(table).map(([flag, names]) => [flag, names.map((n) => lookupFeatureIndex(n)!)])),
  ]),
);

/** {@link parseCpuinfo} with feature indexes (sorted) instead of names: the evaluation fast path. */
export function parseCpuinfoIndexes(text: string): Omit<ParsedHostCpu, 'features'> & { indexes: number[] } {
  if (typeof text !== 'string' || !/\S/.test(text)) throw malformed('the text is empty');
  const fields = new Map<string, string>();
  let started = false;
  // Walk lines with indexOf rather than split + regex: hosts send 64+ processor blocks and only the
  // first one is read.
  for (let pos = 0; pos <= text.length; ) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end).trim();
    pos = end + 1;
    if (line === '') {
      if (started) break; // end of the first processor block
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue; // tolerate stray lines
    const key = line.slice(0, colon).trim().toLowerCase();
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
    started = true;
  }
  if (!started) throw malformed('no "key : value" lines found');
  const vendorId = fields.get('vendor_id');
  if (vendorId === undefined) {
    throw malformed('no vendor_id line in the first processor block (not an x86 /proc/cpuinfo?)');
  }
  const vendor = vendorFromCpuidString(vendorId);
  if (!vendor) {
    throw new FlexmigError(ErrorCode.UnknownVendor, `unknown CPU vendor_id "${vendorId}" in /proc/cpuinfo`, { vendor: vendorId });
  }
  const flags = fields.get('flags');
  if (flags === undefined) throw malformed('no flags line in the first processor block');

  const { indexes, unknownFlags } = decodeFlags(vendor, flags);
  const out: Omit<ParsedHostCpu, 'features'> & { indexes: number[] } = {
    vendor,
    indexes,
    unknownFlags: [...unknownFlags],
  };
  const modelName = fields.get('model name');
  if (modelName) out.modelName = modelName.replace(/\s+/g, ' ');
  const family = intField(fields, 'cpu family');
  if (family !== undefined) out.family = family;
  const model = intField(fields, 'model');
  if (model !== undefined) out.model = model;
  return out;
}

// A fleet has few distinct flags lines (one per CPU model, microcode and kernel), so decoded lines are
// memoized: hashing one line is far cheaper than looking up ~100 flags. Bounded; cleared when full.
const FLAGS_CACHE_LIMIT = 512;
const flagsCache = new Map<string, { indexes: number[]; unknownFlags: string[] }>();

function decodeFlags(vendor: Vendor, flags: string): { indexes: number[]; unknownFlags: readonly string[] } {
  const key = `${vendor}\n${flags}`;
  const hit = flagsCache.get(key);
  if (hit) return hit;
  const synthetic = syntheticByVendor.get(vendor) ?? new Map<string, number[]>();
  const found = new Set<number>();
  const unknownFlags: string[] = [];
  for (const flag of flags.split(/[ \t]+/)) {
    if (flag === '') continue;
    const mapped = synthetic.get(flag);
    if (mapped) {
      for (const m of mapped) found.add(m);
      continue;
    }
    const i = lookupFeatureIndex(flag);
    if (i === undefined) unknownFlags.push(flag);
    else found.add(i);
  }
  const decoded = { indexes: Object.freeze([...found].sort((a, b) => a - b)) as number[], unknownFlags };
  if (flagsCache.size >= FLAGS_CACHE_LIMIT) flagsCache.clear();
  flagsCache.set(key, decoded);
  return decoded;
}

function intField(fields: Map<string, string>, key: string): number | undefined {
  const v = fields.get(key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw malformed(`"${key}" is not a number: "${v}"`, { field: key, value: v });
  return Number(v);
}
