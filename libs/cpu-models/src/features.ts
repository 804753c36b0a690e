import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { catalog, CpuFeature, features, lookupFeatureIndex, Vendor, cpuidVendorOf } from './catalog';

/**
 * A feature by any spelling (libvirt, QEMU, Linux /proc/cpuinfo; case-insensitive as a fallback).
 * The canonical name is libvirt's. An unknown name is NOT_FOUND (UNKNOWN_CPU_MODEL is for baselines).
 */
export function getFeature(name: string): CpuFeature {
  const i = lookupFeatureIndex(name);
  if (i === undefined) {
    throw new FlexmigError(ErrorCode.NotFound, `unknown CPU feature "${name}"`, { feature: name });
  }
  return features[i];
}

/** Canonical (libvirt) names, de-duplicated and sorted; names that match no feature go to `unknown`. */
export function normalizeFeatureNames(names: readonly string[]): { features: string[]; unknown: string[] } {
  const found = new Set<number>();
  const unknown: string[] = [];
  for (const n of names) {
    const i = lookupFeatureIndex(n);
    if (i === undefined) unknown.push(n);
    else found.add(i);
  }
  return { features: [...found].sort((a, b) => a - b).map((i) => features[i].name), unknown };
}

const vendorSpellings = new Map<string, Vendor>();
for (const v of catalog.vendors) {
  vendorSpellings.set(v.name.toLowerCase(), v.name as Vendor);
  vendorSpellings.set(v.cpuidVendor.toLowerCase(), v.name as Vendor);
}

/** 'Intel' | 'AMD' | 'Hygon' | 'Zhaoxin' from a libvirt vendor name or a CPUID vendor string; else UNKNOWN_VENDOR. */
export function normalizeVendor(vendor: string): Vendor {
  const v = vendorSpellings.get(vendor.trim().toLowerCase());
  if (!v) {
    const valid = catalog.vendors.flatMap((x) => [x.name, x.cpuidVendor]).join(', ');
    throw new FlexmigError(ErrorCode.UnknownVendor, `unknown CPU vendor "${vendor}" (known: ${valid})`, { vendor });
  }
  return v;
}

const cpuidVendorTrimmed = new Map<string, Vendor>([...cpuidVendorOf].map(([s, v]) => [s.trim(), v]));
/** Vendor of a CPUID.0 string; also as /proc/cpuinfo prints it (Zhaoxin's "  Shanghai  " without its padding). */
export const vendorFromCpuidString = (s: string): Vendor | undefined => cpuidVendorOf.get(s) ?? cpuidVendorTrimmed.get(s.trim());
