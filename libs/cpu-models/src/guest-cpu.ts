import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { catalog, features as allFeatures } from './catalog';
import { getBaseline } from './baselines';
import { getFeature } from './features';
import { CpuidRow, parseCpuidDump } from './parse-cpuid';

/**
 * The CPU a guest sees against the baseline it was started with (issue 12): no feature of the baseline
 * missing, no feature outside it visible, except the documented ones (README "The CPU the guest sees").
 */

/** Why a feature is not held against the guest either way. */
export type GuestCpuExceptionReason = 'hypervisor-supplied' | 'os-controlled' | 'presented-by-model' | 'tcg-cannot-present';

export interface GuestCpuComparison {
  /** The baseline compared against. */
  baseline: string;
  /** No missing and no extra feature. */
  ok: boolean;
  /** Every catalog feature the guest sees (canonical names, sorted). */
  seen: string[];
  /** Features of the baseline the guest does not see. */
  missing: string[];
  /** Features the guest sees that the baseline does not have. */
  extra: string[];
  /** Features that differ from the baseline (either way) but are documented exceptions. */
  exceptions: { feature: string; seen: boolean; reason: GuestCpuExceptionReason }[];
  /** Features of the baseline the sample cannot show: MSR features, or CPUID leaves that were not sampled. */
  unchecked: string[];
}

/** Bits the guest's own OS sets (CR4.OSXSAVE, CR4.PKE): CPUID reports the OS's choice, not the CPU model's. */
export const OS_CONTROLLED_FEATURES: readonly string[] = ['osxsave', 'ospke'];

/**
 * Bits QEMU's TCG never shows a guest although the model has them: QEMU turns `vme` off for every model under
 * TCG (its TCG defaults), so `enforce` does not object, and `+vme` is refused. Missing only under TCG.
 */
export const TCG_ABSENT_FEATURES: readonly string[] = ['vme'];

export interface CompareGuestCpuInput {
  /** The accelerator the guest runs under: under `tcg`, {@link TCG_ABSENT_FEATURES} may be missing. */
  accel?: 'tcg' | 'kvm';
  /** The VM's baseline (a catalog name or alias), or a label when `expected` is given. */
  baseline: string;
  /** The features the guest should see; default: the baseline's (host-passthrough: the start host's). */
  expected?: readonly string[];
  /** Canonical names of the features the guest sees. */
  seen: readonly string[];
  /**
   * The CPUID (leaf, subleaf) pairs the sample covered, with the maximum basic and extended leaves the
   * guest reported; a feature elsewhere is unchecked. Absent: every CPUID feature was observable (a model).
   */
  sampled?: { rows: ReadonlyArray<{ leaf: number; subleaf: number }>; maxBasic: number; maxExtended: number };
}

const EXTENDED_BASE = 0x80000000;

function observable(name: string, sampled: CompareGuestCpuInput['sampled']): boolean {
  const f = allFeatures.find((x) => x.name === name);
  if (!f) return false;
  if (f.msr) return false;
  if (!sampled) return true;
  const leaf = parseInt(f.leaf!, 16);
  // a leaf above the guest's maximum is observed as absent: the guest cannot have that feature
  if (leaf >= EXTENDED_BASE ? leaf > sampled.maxExtended : leaf > sampled.maxBasic) return true;
  return sampled.rows.some((r) => r.leaf === leaf && (r.subleaf === f.subleaf || f.subleafSignificant !== true));
}

/** Compares what a guest sees with its baseline. Pure. */
export function compareGuestCpu(input: CompareGuestCpuInput): GuestCpuComparison {
  const base = input.expected ? undefined : getBaseline(input.baseline);
  const expected = new Set((input.expected ?? base!.features).map((n) => canonicalName(n)));
  const seen = new Set(input.seen.map((n) => canonicalName(n)));
  const hypervisor = new Set(catalog.policy.hypervisorSupplied);
  const presented = new Set(base?.presentedExtra ?? []);
  const reasonFor = (f: string): GuestCpuExceptionReason | undefined =>
    hypervisor.has(f) ? 'hypervisor-supplied' : OS_CONTROLLED_FEATURES.includes(f) ? 'os-controlled' : presented.has(f) ? 'presented-by-model' : undefined;

  const missing: string[] = [];
  const extra: string[] = [];
  const unchecked: string[] = [...(base?.msrFeatures ?? [])];
  const exceptions: GuestCpuComparison['exceptions'] = [];
  for (const f of [...expected].sort()) {
    if (seen.has(f)) continue;
    if (!observable(f, input.sampled)) unchecked.push(f);
    else if (reasonFor(f)) exceptions.push({ feature: f, seen: false, reason: reasonFor(f)! });
    else if (input.accel === 'tcg' && TCG_ABSENT_FEATURES.includes(f)) exceptions.push({ feature: f, seen: false, reason: 'tcg-cannot-present' });
    else missing.push(f);
  }
  for (const f of [...seen].sort()) {
    if (expected.has(f)) continue;
    if (reasonFor(f)) exceptions.push({ feature: f, seen: true, reason: reasonFor(f)! });
    else extra.push(f);
  }
  return {
    baseline: base?.name ?? input.baseline,
    ok: missing.length === 0 && extra.length === 0,
    seen: [...seen].sort(),
    missing,
    extra,
    exceptions,
    unchecked: [...new Set(unchecked)].sort(),
  };
}

/** Compares raw CPUID rows a guest executed (its vendor, features, and which leaves they cover) with its baseline. */
export function compareGuestCpuid(
  baseline: string,
  rows: readonly CpuidRow[],
  o: { expected?: readonly string[]; accel?: 'tcg' | 'kvm' } = {},
): GuestCpuComparison & { vendor: string } {
  const parsed = parseCpuidDump(rows);
  const num = (v: number | string) => (typeof v === 'number' ? v : parseInt(v, 16));
  const regsOf = (leaf: number) => rows.find((r) => num(r.leaf) === leaf);
  const leaf0 = regsOf(0);
  if (!leaf0) throw new FlexmigError(ErrorCode.MalformedCpuid, 'the guest CPUID sample has no leaf 0x0');
  const ext = regsOf(EXTENDED_BASE);
  const maxExtended = ext && num(ext.eax) >= EXTENDED_BASE ? num(ext.eax) : EXTENDED_BASE;
  const sampled = { rows: rows.map((r) => ({ leaf: num(r.leaf), subleaf: num(r.subleaf) })), maxBasic: num(leaf0.eax), maxExtended };
  return { vendor: parsed.vendor, ...compareGuestCpu({ baseline, seen: parsed.features, sampled, ...o }) };
}

function canonicalName(name: string): string {
  try {
    return getFeature(name).name;
  } catch {
    return name; // not a catalog feature: compared as given
  }
}
