import { Injectable } from '@nestjs/common';
import { ClusterPlan, CpuEvaluation, CpuModel, EvaluateCpu, Verdict, VendorSchema } from '@flexmig/contracts';
import { Baseline, cpuidMasks, evaluateHost, getBaseline, listBaselines, planCluster, verdict, verifyMode } from '@flexmig/cpu-models';
import type { ClusterHost, CpuidMask, ModeVerification } from '@flexmig/cpu-models';

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
      ladder: e.ladder.map(({ mode, order, tsx, supported, missing }) => ({ mode, order, tsx, supported, missing })),
      psabiLevel: e.psabiLevel,
      assumed: e.assumed,
      unknown: e.unknown,
      notes: e.notes,
    };
  }

  verdict(baseline: string, target: { vendor: string; features: string[] }): Verdict {
    const v = verdict(baseline, target);
    return { baseline: v.baseline, compatible: v.compatible, missing: v.missing, vendorMismatch: v.vendorMismatch, unchecked: v.unchecked, reason: v.reason };
  }

  model(name: string): CpuModel {
    return modelView(getBaseline(name));
  }

  models(filter: { vendor?: 'Intel' | 'AMD'; ladder?: 'intel' | 'amd' | 'psabi' }): CpuModel[] {
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
