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
  CpuModel,
  ModeVerification,
  VerifyCpuMode,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';

/** A host as the cluster-wide questions send it. */
export interface HostWithCpu {
  id: string;
  cpu: Pick<HostCpu, 'vendor' | 'features'>;
}

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

  /** The plan of `hosts`, sent grouped by CPU (each feature list once); its per-host lists in the order of `hosts`. */
  async plan(hosts: readonly HostWithCpu[]): Promise<ClusterPlan> {
    const plan = await this.bus.request(PlanCluster, { cpus: groupedByCpu(hosts) });
    const order = orderOf(hosts);
    return {
      ...plan,
      holdingDown: inOrder(plan.holdingDown, order, (id) => id),
      withoutHost: inOrder(plan.withoutHost, order, (h) => h.hostId),
      hostModes: inOrder(plan.hostModes, order, (h) => h.hostId),
    };
  }

  /** Every host of `hosts` against one mode, sent grouped by CPU; the answer's hosts in the order of `hosts`. */
  async verify(mode: string, hosts: readonly HostWithCpu[]): Promise<ModeVerification> {
    const v = await this.bus.request(VerifyCpuMode, { mode, cpus: groupedByCpu(hosts) });
    return { ...v, hosts: inOrder(v.hosts, orderOf(hosts), (h) => h.hostId) };
  }

  async model(name: string): Promise<CpuModel> {
    return (await this.bus.request(GetCpuModel, { name })).model;
  }
}

const groupedByCpu = (hosts: readonly HostWithCpu[]) => groupByCpu(hosts.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })));
const orderOf = (hosts: readonly HostWithCpu[]) => new Map(hosts.map((h, i) => [h.id, i]));
/** `xs` sorted by their host's place in `order` (a host it does not know goes last). */
export const inOrder = <T>(xs: readonly T[], order: ReadonlyMap<string, number>, idOf: (x: T) => string): T[] =>
  [...xs].sort((a, b) => (order.get(idOf(a)) ?? order.size) - (order.get(idOf(b)) ?? order.size));
