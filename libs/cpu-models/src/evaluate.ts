import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { resolveBaseline } from './baselines';
import {
  Bits,
  BaselineIndex,
  hasBit,
  hypervisorSuppliedBits,
  isSubset,
  ladderOf,
  LM,
  lookupFeatureIndex,
  missingNames,
  namesOf,
  newBits,
  rankOf,
  setBit,
  SVM,
  SYSCALL,
  noLadderReason,
  Vendor,
  vendorLadders,
  VMX,
  WORDS,
} from './catalog';
import { normalizeVendor } from './features';
import { CpuidRow, parseCpuidIndexes } from './parse-cpuid';
import { parseCpuinfoIndexes } from './parse-cpuinfo';

/** A host CPU as it can be handed in: /proc/cpuinfo text, raw CPUID rows, or a feature list. */
export type HostCpuInput =
  | { cpuinfo: string }
  | { cpuid: readonly CpuidRow[] }
  | { features: readonly string[]; vendor?: string };

/** A host's CPU prepared for checks: raw bits as reported, and the effective bits a guest can get. */
export interface HostCpu {
  vendor: Vendor;
  vendorInferred: boolean;
  modelName?: string;
  /** As reported (canonical indexes). */
  bits: Bits;
  /** `bits` plus hypervisor-supplied bits plus `syscall` under the Intel 64-bit rule. */
  effective: Bits;
  unknown: string[];
}

/**
 * Effective features = reported ∪ hypervisor-supplied (x2apic, tsc-deadline, arat, tsc_adjust,
 * arch-capabilities, hypervisor: KVM/QEMU give them to every guest whatever the host CPUID says)
 * ∪ {syscall} for an Intel host that reports `lm` but not `syscall` (Intel sets CPUID.80000001:EDX[11]
 * only when CPUID runs in 64-bit mode; a 32-bit dump tool sees 0 on a 64-bit-capable CPU).
 */
function effectiveBits(vendor: Vendor, bits: Bits): Bits {
  const e = newBits();
  for (let w = 0; w < WORDS; w++) e[w] = bits[w] | hypervisorSuppliedBits[w];
  if (vendor === 'Intel' && hasBit(bits, LM)) setBit(e, SYSCALL);
  return e;
}

/**
 * Vendor of a bare feature list: `vmx` alone → Intel, `svm` alone → AMD (every KVM host has one of them).
 * Anything else is ambiguous and needs an explicit vendor. Hygon hosts report `svm` and would be taken
 * for AMD, so Hygon feature lists must carry their vendor.
 */
export function inferVendor(bits: Bits): Vendor | undefined {
  const vmx = hasBit(bits, VMX);
  const svm = hasBit(bits, SVM);
  if (vmx && !svm) return 'Intel';
  if (svm && !vmx) return 'AMD';
  return undefined;
}

function bitsFromNames(names: readonly string[]): { bits: Bits; unknown: string[]; count: number } {
  const bits = newBits();
  const unknown: string[] = [];
  let count = 0;
  for (const n of names) {
    const i = typeof n === 'string' ? lookupFeatureIndex(n) : undefined;
    if (i === undefined) unknown.push(String(n));
    else {
      setBit(bits, i);
      count++;
    }
  }
  return { bits, unknown, count };
}

/** Turns any accepted host input into a {@link HostCpu}. Throws EMPTY_FEATURE_LIST / UNKNOWN_VENDOR / MALFORMED_*. */
export function toHostCpu(input: HostCpuInput, what = 'host'): HostCpu {
  let vendor: Vendor | undefined;
  let modelName: string | undefined;
  let bits: Bits;
  let count: number;
  let unknown: string[];
  let vendorInferred = false;
  if (input && 'cpuinfo' in input) {
    const p = parseCpuinfoIndexes(input.cpuinfo);
    ({ vendor, modelName } = p);
    ({ bits, count } = bitsFromIndexes(p.indexes));
    unknown = p.unknownFlags;
  } else if (input && 'cpuid' in input) {
    const p = parseCpuidIndexes(input.cpuid);
    ({ vendor, modelName } = p);
    ({ bits, count } = bitsFromIndexes(p.indexes));
    unknown = [];
  } else if (input && 'features' in input && Array.isArray(input.features)) {
    ({ bits, count, unknown } = bitsFromNames(input.features));
    if (input.vendor !== undefined && input.vendor !== null) vendor = normalizeVendor(input.vendor);
  } else {
    throw new FlexmigError(ErrorCode.ValidationFailed, `${what}: expected {cpuinfo}, {cpuid} or {features, vendor?}`);
  }
  if (count === 0) {
    throw new FlexmigError(ErrorCode.EmptyFeatureList, `${what}: no known CPU features in the input`, { unknown });
  }
  if (vendor === undefined) {
    vendor = inferVendor(bits);
    vendorInferred = true;
    if (vendor === undefined) {
      throw new FlexmigError(
        ErrorCode.UnknownVendor,
        `${what}: vendor not given and not inferable (needs exactly one of vmx (Intel) or svm (AMD) in the features)`,
      );
    }
  }
  const host: HostCpu = { vendor, vendorInferred, bits, effective: effectiveBits(vendor, bits), unknown };
  if (modelName !== undefined) host.modelName = modelName;
  return host;
}

function bitsFromIndexes(indexes: readonly number[]): { bits: Bits; count: number } {
  const bits = newBits();
  for (const i of indexes) setBit(bits, i);
  return { bits, count: indexes.length };
}

/** Highest mode of a ladder whose features are all in `bits` (generation first, TSX over noTSX). */
export function highestMode(ladder: readonly BaselineIndex[], bits: Bits): BaselineIndex | null {
  let best: BaselineIndex | null = null;
  for (const m of ladder) {
    if (isSubset(m.bits, bits) && (best === null || rankOf(m.baseline) > rankOf(best.baseline))) best = m;
  }
  return best;
}

/**
 * The vendor's best mode for `bits`: the main ladder's highest mode, replaced by a further ladder's
 * (Intel's `intel-ecore`) only where that mode contains the main answer, so the extra ladder never costs
 * a feature the main ladder would have given (README decision 8). Null when no ladder or no mode fits.
 */
export function bestMode(vendor: Vendor, bits: Bits): BaselineIndex | null {
  let best: BaselineIndex | null = null;
  for (const name of vendorLadders[vendor]) {
    const m = highestMode(ladderOf[name], bits);
    if (m !== null && (best === null || (isSubset(best.bits, m.bits) && !isSubset(m.bits, best.bits)))) best = m;
  }
  return best;
}

export interface LadderStep {
  mode: string;
  order: number;
  /** true: the TSX mode of a generation; false: its -noTSX sibling; null: no TSX distinction. */
  tsx: boolean | null;
  supported: boolean;
  missing: string[];
}

export interface HostEvaluation {
  vendor: Vendor;
  /** True when the vendor came from vmx/svm in a bare feature list. */
  vendorInferred: boolean;
  modelName?: string;
  /** As reported, canonical (libvirt) names, sorted. */
  features: string[];
  /** Bits the host lacks but a guest gets anyway (hypervisor-supplied, or syscall under the Intel rule). */
  assumed: string[];
  /** Input names or flags that are no catalog feature (ignored). */
  unknown: string[];
  /**
   * Newest IMC mode of the vendor's ladders whose CPUID-checkable features the host all has; null when the
   * vendor has no ladder (Zhaoxin/VIA: passthrough only) or no mode fits (`reason` says which).
   */
  maxImcMode: string | null;
  /** Why `maxImcMode` is what it is (for a null: what the host can still do). */
  reason: string;
  ladder: LadderStep[];
  /** Highest x86-64 psABI level (x86-64-v1..v4) the host reaches, or null. */
  psabiLevel: string | null;
  psabi: LadderStep[];
  notes: string[];
}

function steps(ladder: readonly BaselineIndex[], bits: Bits): LadderStep[] {
  return ladder.map((m) => {
    const missing = missingNames(m.bits, bits);
    return { mode: m.baseline.name, order: m.baseline.order, tsx: m.baseline.tsx, supported: missing.length === 0, missing };
  });
}

/** What a host is: its features, the highest IMC mode of its vendor's ladder, and its psABI level. */
export function evaluateHost(input: HostCpuInput): HostEvaluation {
  const host = toHostCpu(input);
  const ladders = vendorLadders[host.vendor].map((n) => ladderOf[n]);
  const notes: string[] = [];
  const max = bestMode(host.vendor, host.effective);
  let reason: string;
  if (ladders.length === 0) {
    reason = noLadderReason(host.vendor);
    notes.push(reason);
  } else if (max === null) {
    reason = `the host lacks features of even the oldest ${host.vendor} mode (${ladders[0][0].baseline.name}): it can only join a cluster whose IMC mode is off (host passthrough)`;
  } else {
    reason = `${max.baseline.name} is the newest ${host.vendor} mode whose CPUID features the host all has`;
  }
  const psabi = highestMode(ladderOf.psabi, host.effective);
  const assumedBits = newBits();
  for (let w = 0; w < WORDS; w++) assumedBits[w] = host.effective[w] & ~host.bits[w];
  const assumed = namesOf(assumedBits);
  if (assumed.includes('syscall')) notes.push('syscall assumed: Intel reports it only to 64-bit code and the host has lm');
  const out: HostEvaluation = {
    vendor: host.vendor,
    vendorInferred: host.vendorInferred,
    features: namesOf(host.bits),
    assumed,
    unknown: host.unknown,
    maxImcMode: max ? max.baseline.name : null,
    reason,
    ladder: ladders.flatMap((l) => steps(l, host.effective)),
    psabiLevel: psabi ? psabi.baseline.name : null,
    psabi: steps(ladderOf.psabi, host.effective),
    notes,
  };
  if (host.modelName !== undefined) out.modelName = host.modelName;
  return out;
}

/** A migration target as the checks take it. */
export interface TargetCpu {
  vendor: string;
  features: readonly string[];
}

export interface Verdict {
  baseline: string;
  compatible: boolean;
  /** CPUID-checkable features of the baseline the target lacks (after hypervisor-supplied bits and the syscall rule). */
  missing: string[];
  vendorMismatch: boolean;
  /** MSR features of the baseline; CPUID and /proc/cpuinfo cannot show them, so they are not checked. */
  unchecked: string[];
  reason: string;
}

function verdictFor(m: BaselineIndex, host: HostCpu): Verdict {
  const b = m.baseline;
  const vendorMismatch = b.vendor !== null && b.vendor !== host.vendor;
  const missing = missingNames(m.bits, host.effective);
  let reason: string;
  if (vendorMismatch) reason = `${b.name} is an ${b.vendor} baseline and the host is ${host.vendor}`;
  else if (missing.length > 0) reason = `host lacks ${missing.length} feature(s) of ${b.name}: ${missing.join(', ')}`;
  else reason = `host has all ${b.features.length} CPUID features of ${b.name}`;
  if (vendorMismatch && missing.length > 0) reason += `; it also lacks ${missing.join(', ')}`;
  return { baseline: b.name, compatible: !vendorMismatch && missing.length === 0, missing, vendorMismatch, unchecked: b.msrFeatures, reason };
}

/**
 * Can a VM started with `baselineName` run on `target`? Same vendor (psABI levels have none) and every
 * CPUID-checkable feature of the baseline present. MSR features are listed in `unchecked`.
 */
export function verdict(baselineName: string, target: TargetCpu): Verdict {
  const m = resolveBaseline(baselineName);
  return verdictFor(m, toHostCpu({ features: target.features, vendor: target.vendor }, 'target'));
}

/** The pre-check form of {@link verdict}: throws CPU_INCOMPATIBLE naming the missing features. */
export function assertCpuCompatible(baselineName: string, target: TargetCpu): void {
  const v = verdict(baselineName, target);
  if (!v.compatible) {
    throw new FlexmigError(ErrorCode.CpuIncompatible, `CPU incompatible: ${v.reason}`, {
      baseline: v.baseline,
      missing: v.missing,
      vendorMismatch: v.vendorMismatch,
    });
  }
}

export interface ClusterHost {
  id: string;
  vendor: string;
  features: readonly string[];
}

/**
 * Each host's CPU, parsed once per distinct CPU: hosts that share their feature array (cpu-compat's
 * requests give a cluster's hosts grouped by CPU, so 1,100 hosts of one model share one) and their vendor
 * share one {@link HostCpu}, which nothing changes. A host whose input is refused throws as `toHostCpu` does.
 */
export function hostCpusOf(hosts: readonly ClusterHost[]): HostCpu[] {
  const parsed = new Map<readonly string[], { vendor: string; cpu: HostCpu }>();
  return hosts.map((h) => {
    const seen = parsed.get(h.features);
    if (seen && seen.vendor === h.vendor) return seen.cpu;
    const cpu = toHostCpu({ features: h.features, vendor: h.vendor }, `host ${h.id}`);
    parsed.set(h.features, { vendor: h.vendor, cpu });
    return cpu;
  });
}

export interface ModeVerification {
  mode: string;
  pass: boolean;
  hosts: { hostId: string; pass: boolean; missing: string[]; vendorMismatch: boolean; reason: string }[];
}

/** Checks every host against one mode (e.g. before raising a cluster's mode). */
export function verifyMode(mode: string, hosts: readonly ClusterHost[]): ModeVerification {
  const m = resolveBaseline(mode);
  const cpus = hostCpusOf(hosts);
  // hosts of one CPU share its HostCpu, and so its verdict: judged once
  const verdicts = new Map<HostCpu, ReturnType<typeof verdictFor>>();
  const results = hosts.map((h, i) => {
    const cpu = cpus[i]!;
    const v = verdicts.get(cpu) ?? verdicts.set(cpu, verdictFor(m, cpu)).get(cpu)!;
    return { hostId: h.id, pass: v.compatible, missing: v.missing, vendorMismatch: v.vendorMismatch, reason: v.reason };
  });
  return { mode: m.baseline.name, pass: results.every((r) => r.pass), hosts: results };
}

