import { catalog, features as allFeatures, lookupFeatureIndex, Vendor } from './catalog';
import { resolveBaseline } from './baselines';

export interface SimulatedHostCpu {
  vendor: Vendor;
  modelName: string;
  family?: number;
  model?: number;
  /** Canonical names, sorted: the mode's CPUID features plus the virtualization flag (vmx/svm). */
  features: string[];
}

/**
 * A host CPU of the mode's generation, as a simulated agent reports it (`SIM_CPU=IvyBridge`): exactly the
 * mode's CPUID features, plus `vmx` (Intel) or `svm` (AMD) because a hypervisor host has hardware
 * virtualization, and a plausible model name and family/model (libvirt's signature). psABI levels are
 * simulated as an Intel host. Opteron_G1 has no `svm` (AMD-V came with K8 revision F).
 */
export function simulatedHostCpu(modeName: string): SimulatedHostCpu {
  const { baseline: b } = resolveBaseline(modeName);
  const vendor: Vendor = b.vendor ?? 'Intel';
  const extra = vendor === 'Intel' ? ['vmx'] : b.name === 'Opteron_G1' ? [] : ['svm'];
  const features = [...new Set([...b.features, ...extra])].sort();
  const out: SimulatedHostCpu = { vendor, modelName: b.simulatedModelName, features };
  if (b.signature) {
    out.family = b.signature.family;
    out.model = b.signature.model;
  }
  return out;
}

/** Reverse of cpuinfo's synthetic flags: the flag Linux prints for a bit it does not print itself. */
function syntheticFlagsFor(vendor: Vendor): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [flag, bits] of Object.entries(catalog.policy.cpuinfoSynthetic[vendor] ?? {})) {
    for (const b of bits) out.set(b, [...(out.get(b) ?? []), flag]);
  }
  return out;
}

/**
 * A minimal /proc/cpuinfo (one processor block) for a simulated host, so a simulated agent can go through
 * the same parser as a real one. Features Linux does not print are rendered as Linux's synthetic flags.
 */
export function simulatedCpuinfo(modeName: string): string {
  const cpu = simulatedHostCpu(modeName);
  const synthetic = syntheticFlagsFor(cpu.vendor);
  const flags: string[] = [];
  for (const name of cpu.features) {
    const f = allFeatures[lookupFeatureIndex(name)!];
    if (f.linuxName) flags.push(f.linuxName);
    else for (const s of synthetic.get(name) ?? []) flags.push(s);
  }
  const vendorId = catalog.vendors.find((v) => v.name === cpu.vendor)!.cpuidVendor;
  return [
    'processor\t: 0',
    `vendor_id\t: ${vendorId}`,
    `cpu family\t: ${cpu.family ?? 6}`,
    `model\t\t: ${cpu.model ?? 0}`,
    `model name\t: ${cpu.modelName}`,
    `flags\t\t: ${[...new Set(flags)].join(' ')}`,
    '',
  ].join('\n');
}
