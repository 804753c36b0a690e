import { Injectable } from '@nestjs/common';
import { CpuVerdict, EvaluateCpuRequest, GetCpuModel, HostCpu, PlanCluster, ClusterPlan, CpuEvaluation, Verdict, CpuModel } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';

/** cpu-compat owns the CPU catalog; inventory asks it over NATS. */
@Injectable()
export class CpuCompatClient {
  constructor(private readonly bus: NatsBus) {}

  evaluate(cpu: HostCpu): Promise<CpuEvaluation> {
    return this.bus.request(EvaluateCpuRequest, { features: cpu.features, vendor: cpu.vendor });
  }

  /** `vmFeatures`: the features a host-passthrough VM started with (the target must have exactly those). */
  verdict(baseline: string, target: Pick<HostCpu, 'vendor' | 'features'>, vmFeatures?: readonly string[]): Promise<Verdict> {
    return this.bus.request(CpuVerdict, { baseline, target: { vendor: target.vendor, features: target.features }, ...(vmFeatures ? { vmFeatures: [...vmFeatures] } : {}) });
  }

  plan(hosts: { id: string; cpu: HostCpu }[]): Promise<ClusterPlan> {
    return this.bus.request(PlanCluster, { hosts: hosts.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })) });
  }

  async model(name: string): Promise<CpuModel> {
    return (await this.bus.request(GetCpuModel, { name })).model;
  }
}
