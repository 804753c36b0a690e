import { Controller, Inject } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { ErrorCode, FlexmigError, ProbeLink, ReplyOf, RequestOf, SampleDirtyRate } from '@flexmig/contracts';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';

/** The inputs of a migration's prediction this agent measures (docs/prediction.md): its VMs' dirty rate, its link. */
@Controller()
export class PredictionHandlers {
  constructor(
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    @Inject(AGENT_ENV) private readonly env: AgentEnv,
  ) {}

  @MessagePattern(SampleDirtyRate.subject)
  async dirtyRate(r: RequestOf<typeof SampleDirtyRate>): Promise<ReplyOf<typeof SampleDirtyRate>> {
    if (!this.driver.dirtyRate) {
      throw new FlexmigError(ErrorCode.ValidationFailed, `the ${this.driver.kind} driver cannot measure a VM's dirty rate (host ${this.env.HOST_ID}, VM ${r.vmId})`);
    }
    const o = await this.driver.dirtyRate(r.vmId, { ...(r.fresh ? { fresh: true } : {}), ...(r.maxAgeMs !== undefined ? { maxAgeMs: r.maxAgeMs } : {}) });
    return { vmId: r.vmId, hostId: this.env.HOST_ID, ...o, measuredAt: o.measuredAt.toISOString() };
  }

  @MessagePattern(ProbeLink.subject)
  async probeLink(r: RequestOf<typeof ProbeLink>): Promise<ReplyOf<typeof ProbeLink>> {
    if (!this.driver.probeLink) {
      throw new FlexmigError(
        ErrorCode.ValidationFailed,
        `the ${this.driver.kind} driver of host ${this.env.HOST_ID} has no link probe yet: the bandwidth towards ${r.targetHostId} is known once a migration between the two hosts has measured it`,
      );
    }
    const o = await this.driver.probeLink(r.targetHostId, r.targetAddress);
    return { ...o, measuredAt: o.measuredAt.toISOString() };
  }
}
