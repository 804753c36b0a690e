import { Injectable } from '@nestjs/common';
import {
  CpuVerdict,
  EvaluateCpuRequest,
  GetCpuModel,
  groupByCpu,
  HostCpu,
  PlanCluster,
  ClusterPlan,
  CpuEvaluation,
  Verdict,
  VerdictCache,
  type VerdictQuestion,
  CpuModel,
  ModeVerification,
  planForEveryHost,
  representativesOf,
  verificationForEveryHost,
  VerifyCpuMode,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';

/** A host as the cluster-wide questions send it. */
export interface HostWithCpu {
  id: string;
  cpu: Pick<HostCpu, 'vendor' | 'features'>;
}

const verdictQuestion = (baseline: string, target: Pick<HostCpu, 'vendor' | 'features'>, vmFeatures?: readonly string[]): VerdictQuestion => ({
  baseline,
  target: { vendor: target.vendor, features: target.features },
  ...(vmFeatures ? { vmFeatures: [...vmFeatures] } : {}),
});

/** cpu-compat owns the CPU catalog; inventory asks it over NATS. */
@Injectable()
export class CpuCompatClient {
  /**
   * Saga step 1 asks a verdict on every migration, nearly always one asked a moment before (a fleet has a
   * handful of CPU kinds and baselines): the answer is kept a minute (VerdictCache).
   */
  private readonly verdicts: VerdictCache;

  constructor(private readonly bus: NatsBus) {
    this.verdicts = new VerdictCache((q) => this.bus.request(CpuVerdict, q));
  }

  evaluate(cpu: HostCpu): Promise<CpuEvaluation> {
    return this.bus.request(EvaluateCpuRequest, { features: cpu.features, vendor: cpu.vendor });
  }

  /** `vmFeatures`: the features a host-passthrough VM started with (the target must have exactly those). */
  verdict(baseline: string, target: Pick<HostCpu, 'vendor' | 'features'>, vmFeatures?: readonly string[]): Promise<Verdict> {
    return this.verdicts.verdict(verdictQuestion(baseline, target, vmFeatures));
  }

  /** The same question's answer when a recent one is kept, without asking (undefined otherwise). */
  knownVerdict(baseline: string, target: Pick<HostCpu, 'vendor' | 'features'>, vmFeatures?: readonly string[]): Verdict | undefined {
    return this.verdicts.known(verdictQuestion(baseline, target, vmFeatures));
  }

  /**
   * The plan of `hosts`, asked of one host per CPU (`representativesOf`: each feature list once, and an
   * answer of a few entries instead of three per host) and answered for every host, in the order of `hosts`.
   */
  async plan(hosts: readonly HostWithCpu[]): Promise<ClusterPlan> {
    const groups = groupedByCpu(hosts);
    const plan = await this.bus.request(PlanCluster, { cpus: representativesOf(groups) });
    return planForEveryHost(plan, groups, hosts.map((h) => h.id));
  }

  /** Every host of `hosts` against one mode, asked of one host per CPU; in the order of `hosts`. */
  async verify(mode: string, hosts: readonly HostWithCpu[]): Promise<ModeVerification> {
    const groups = groupedByCpu(hosts);
    const v = await this.bus.request(VerifyCpuMode, { mode, cpus: representativesOf(groups) });
    return verificationForEveryHost(v, groups, hosts.map((h) => h.id));
  }

  async model(name: string): Promise<CpuModel> {
    return (await this.bus.request(GetCpuModel, { name })).model;
  }
}

const groupedByCpu = (hosts: readonly HostWithCpu[]) => groupByCpu(hosts.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })));
