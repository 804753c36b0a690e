import { Injectable } from '@nestjs/common';
import {
  ClusterPlan,
  CpuEvaluation,
  CpuModel,
  ErrorCode,
  EvaluateCpu,
  FlexmigError,
  HOST_PASSTHROUGH_BASELINE,
  Verdict,
  VendorSchema,
} from '@flexmig/contracts';
import {
  cpuidMasks,
  evaluateHost,
  getBaseline,
  listBaselines,
  modesHighestFirst,
  noLadderReason,
  normalizeFeatureNames,
  normalizeVendor,
  planCluster,
  verdict,
  verifyMode,
} from '@flexmig/cpu-models';
import type { Baseline, ClusterHost, CpuidMask, ModeVerification } from '@flexmig/cpu-models';

/** cpu-compat's logic: the pure catalog functions, shaped into the contracts. Stateless. */
@Injectable()
export class CpuCompatService {
  evaluate(input: EvaluateCpu): CpuEvaluation {
    const e = evaluateHost(input);
    return {
      vendor: VendorSchema.parse(e.vendor),
      ...(e.modelName !== undefined ? { modelName: e.modelName } : {}),
      features: e.features,
      maxImcMode: e.maxImcMode,
      reason: e.reason,
      ladder: e.ladder.map(({ mode, order, tsx, supported, missing }) => ({ mode, order, tsx, supported, missing })),
      psabiLevel: e.psabiLevel,
      assumed: e.assumed,
      unknown: e.unknown,
      notes: e.notes,
    };
  }

  /**
   * A named baseline: the catalog's verdict. `host-passthrough` (IMC off): the VM saw its first host's
   * CPU as is, so the target must have the same vendor and exactly the same feature set (`vmFeatures`):
   * a missing feature would vanish under the guest; an extra one would appear to it, which a running
   * guest never expects either.
   */
  verdict(baseline: string, target: { vendor: string; features: string[] }, vmFeatures?: string[]): Verdict {
    if (baseline.trim().toLowerCase() === HOST_PASSTHROUGH_BASELINE) return passthroughVerdict(target, vmFeatures);
    const v = verdict(baseline, target);
    return { baseline: v.baseline, compatible: v.compatible, missing: v.missing, vendorMismatch: v.vendorMismatch, unchecked: v.unchecked, reason: v.reason };
  }

  model(name: string): CpuModel {
    return modelView(getBaseline(name));
  }

  models(filter: { vendor?: 'Intel' | 'AMD' | 'Hygon'; ladder?: 'intel' | 'intel-ecore' | 'amd' | 'hygon' | 'psabi' }): CpuModel[] {
    return listBaselines(filter).map(modelView);
  }

  plan(hosts: ClusterHost[]): ClusterPlan {
    const p = planCluster(hosts);
    return { mode: p.mode, reason: p.reason, holdingDown: p.holdingDown, withoutHost: p.withoutHost, hostModes: p.hostModes };
  }

  verify(mode: string, hosts: ClusterHost[]): ModeVerification {
    return verifyMode(mode, hosts);
  }

  masks(baseline: string, hostFeatures: string[]): CpuidMask[] {
    return cpuidMasks(baseline, hostFeatures);
  }

  /**
   * A vendor's IMC modes, highest first (the order `auto` tries them in): generation, then the TSX mode
   * above its -noTSX sibling; Intel's E-core modes sit just above the highest main mode they contain.
   */
  ladder(vendor: string): { vendor: string; modes: { name: string; order: number; tsx: boolean | null; features: string[] }[] } {
    const v = normalizeVendor(vendor);
    const modes = modesHighestFirst(v);
    if (modes.length === 0) {
      throw new FlexmigError(ErrorCode.UnknownVendor, `${noLadderReason(v)}; set the cluster's IMC mode to off`, { vendor: v });
    }
    return { vendor: v, modes: modes.map((b) => ({ name: b.name, order: b.order, tsx: b.tsx, features: b.features })) };
  }
}

function passthroughVerdict(target: { vendor: string; features: string[] }, vmFeatures: string[] | undefined): Verdict {
  if (vmFeatures === undefined) {
    throw new FlexmigError(
      ErrorCode.ValidationFailed,
      `a ${HOST_PASSTHROUGH_BASELINE} VM can only be checked against the features of the host it started on: send vmFeatures`,
    );
  }
  // canonical names, so spellings do not matter; names the catalog does not know are compared as given
  const asSet = (names: string[]) => {
    const n = normalizeFeatureNames(names);
    return new Set([...n.features, ...n.unknown]);
  };
  const vm = asSet(vmFeatures);
  const host = asSet(target.features);
  const missing = [...vm].filter((f) => !host.has(f)).sort();
  const extra = [...host].filter((f) => !vm.has(f)).sort();
  const parts: string[] = [];
  if (missing.length) parts.push(`host lacks ${missing.length} feature(s) the VM was started with: ${missing.join(', ')}`);
  if (extra.length) parts.push(`host has ${extra.length} feature(s) the VM was not started with: ${extra.join(', ')}`);
  const compatible = parts.length === 0;
  return {
    baseline: HOST_PASSTHROUGH_BASELINE,
    compatible,
    missing,
    // vmx/svm are among the features, so hosts of two vendors never have the same set
    vendorMismatch: false,
    unchecked: [],
    reason: compatible
      ? `host has exactly the ${vm.size} features the VM was started with (IMC off: host passthrough)`
      : `IMC off (host passthrough) needs the same CPU features on both hosts; ${parts.join('; ')}`,
  };
}

const modelView = (b: Baseline): CpuModel => ({
  name: b.name,
  aliases: b.aliases,
  vendor: b.vendor,
  ladder: b.ladder,
  order: b.order,
  qemuCpu: b.qemuCpu,
  features: b.features,
});
