import { features as allFeatures, hasBit, lookupFeatureIndex, newBits, setBit } from './catalog';
import { resolveBaseline } from './baselines';

/** One CPUID output register: what the host has, what the baseline allows, and the mask to apply. */
export interface CpuidMask {
  leaf: string;
  subleaf: number;
  register: 'EAX' | 'EBX' | 'ECX' | 'EDX';
  hostBits: string;
  baselineBits: string;
  /** Bits the guest may see = baseline ∩ host (Intel FlexMigration: AND-mask hiding the host's extras). */
  mask: string;
}

const hex = (n: number) => '0x' + (n >>> 0).toString(16).padStart(8, '0');

/**
 * CPUID masks presenting `baselineName` on a host with `hostFeatures` (any spelling; unknown names are
 * ignored). One row per leaf/subleaf/register in which the host or the baseline has a catalog feature,
 * sorted by leaf, subleaf, register. Only catalog features count (reserved and non-feature bits such as
 * APIC IDs are not described here). Bits the hypervisor synthesizes (x2apic, arat…) are not the hardware
 * mask's business: if the host lacks them the mask shows 0 and KVM adds them anyway.
 */
export function cpuidMasks(baselineName: string, hostFeatures: readonly string[]): CpuidMask[] {
  const b = resolveBaseline(baselineName);
  const host = newBits();
  for (const n of hostFeatures) {
    const i = lookupFeatureIndex(n);
    if (i !== undefined) setBit(host, i);
  }
  const rows = new Map<string, { leaf: number; subleaf: number; register: CpuidMask['register']; host: number; base: number }>();
  allFeatures.forEach((f, i) => {
    if (f.msr) return;
    const inHost = hasBit(host, i);
    const inBase = hasBit(b.bits, i);
    if (!inHost && !inBase) return;
    const key = `${f.leaf}:${f.subleaf}:${f.register}`;
    let r = rows.get(key);
    if (!r) {
      r = { leaf: parseInt(f.leaf!, 16), subleaf: f.subleaf!, register: f.register!, host: 0, base: 0 };
      rows.set(key, r);
    }
    const bit = (1 << f.bit) >>> 0;
    if (inHost) r.host = (r.host | bit) >>> 0;
    if (inBase) r.base = (r.base | bit) >>> 0;
  });
  return [...rows.values()]
    .sort((x, y) => x.leaf - y.leaf || x.subleaf - y.subleaf || x.register.localeCompare(y.register))
    .map((r) => ({
      leaf: hex(r.leaf),
      subleaf: r.subleaf,
      register: r.register,
      hostBits: hex(r.host),
      baselineBits: hex(r.base),
      mask: hex(r.host & r.base),
    }));
}
