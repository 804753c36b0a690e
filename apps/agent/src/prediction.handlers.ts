import { Controller, Inject } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { ErrorCode, FlexmigError, LINK_SINK_MAX_BYTES, OpenLinkSink, ProbeLink, ReplyOf, RequestOf, SampleDirtyRate } from '@flexmig/contracts';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';

/** The inputs of a migration's prediction this agent measures (docs/prediction.md): its VMs' dirty rate, its link (probe as the source, sink as the target). */
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

  @MessagePattern(OpenLinkSink.subject)
  async openLinkSink(r: RequestOf<typeof OpenLinkSink>): Promise<ReplyOf<typeof OpenLinkSink>> {
    if (!this.driver.openLinkSink) {
      return { address: null, expiresAt: null, detail: `the ${this.driver.kind} driver of host ${this.env.HOST_ID} needs no link sink: a probe towards it answers its model link` };
    }
    const maxBytes = r.maxBytes ?? LINK_SINK_MAX_BYTES;
    const s = await this.driver.openLinkSink(r.sourceHostId, maxBytes);
    return { address: s.address, expiresAt: s.expiresAt.toISOString(), detail: `a one-shot TCP sink of host ${this.env.HOST_ID} for a probe from ${r.sourceHostId}: one connection, at most ${maxBytes} bytes` };
  }
}
