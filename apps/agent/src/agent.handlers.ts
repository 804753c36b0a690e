import { Controller, Inject, Logger, Optional } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { CheckVmCpu, CheckVmMemory, CompensateStep, ErrorCode, FlexmigError, ListAgentVms, PauseVm, QueryMigration, QueryStreamEnd, ReplyOf, RequestOf, RunStep, StartVm } from '@flexmig/contracts';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER, MigrationStepsService } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';
import { AgentStateStore } from './state-store';
import { guestCpuCheck } from './guest-cpu-check';

/** The agent's commands, on `<prefix>.agent.<HOST_ID>.…` only. */
@Controller()
export class AgentHandlers {
  private readonly log = new Logger('agent');
  constructor(
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    private readonly steps: MigrationStepsService,
    @Inject(AGENT_ENV) private readonly env: AgentEnv,
    @Optional() private readonly store?: AgentStateStore,
  ) {}

  @MessagePattern(StartVm.subject)
  async startVm(r: RequestOf<typeof StartVm>): Promise<ReplyOf<typeof StartVm>> {
    await this.driver.startVm(r.vm);
    this.store?.save();
    return { vmId: r.vm.id, state: 'running', startedAt: new Date().toISOString() };
  }

  @MessagePattern(ListAgentVms.subject)
  async list(): Promise<ReplyOf<typeof ListAgentVms>> {
    return { hostId: this.env.HOST_ID, vms: this.driver.listVms() };
  }

  /** Inventory fences the copy of a split brain that is not its record: paused, never destroyed. */
  @MessagePattern(PauseVm.subject)
  async pause(r: RequestOf<typeof PauseVm>): Promise<ReplyOf<typeof PauseVm>> {
    await this.driver.pauseVm(r.vmId);
    this.store?.save();
    this.log.warn(`VM ${r.vmId} paused at inventory's request: ${r.reason}`);
    const state = this.driver.listVms().find((v) => v.vmId === r.vmId)?.state ?? 'paused';
    return { vmId: r.vmId, state, pausedAt: new Date().toISOString() };
  }

  @MessagePattern(RunStep.subject)
  step(r: RequestOf<typeof RunStep>): Promise<ReplyOf<typeof RunStep>> {
    return this.steps.run(r);
  }

  @MessagePattern(CompensateStep.subject)
  async compensate(r: RequestOf<typeof CompensateStep>): Promise<ReplyOf<typeof CompensateStep>> {
    return { migrationId: r.migrationId, step: r.step, ...(await this.steps.compensate(r)) };
  }

  @MessagePattern(QueryMigration.subject)
  async query(r: RequestOf<typeof QueryMigration>): Promise<ReplyOf<typeof QueryMigration>> {
    return { migrationId: r.migrationId, steps: await this.steps.records(r.migrationId, r.step, r.attempt) };
  }

  /** The target's agent, before it starts the guest in its half of step 6: how this source's stream ended. */
  @MessagePattern(QueryStreamEnd.subject)
  async streamEnd(r: RequestOf<typeof QueryStreamEnd>): Promise<ReplyOf<typeof QueryStreamEnd>> {
    const { status, detail, residentBytes } = await this.driver.streamEnd(r.vmId, r.migrationId, r.waitMs);
    return { migrationId: r.migrationId, status, detail: detail.slice(0, 2000), ...(residentBytes !== undefined ? { residentBytes } : {}) };
  }

  @MessagePattern(CheckVmMemory.subject)
  async checkMemory(r: RequestOf<typeof CheckVmMemory>): Promise<ReplyOf<typeof CheckVmMemory>> {
    if (!this.driver.checkMemory) {
      throw new FlexmigError(ErrorCode.ValidationFailed, `the ${this.driver.kind} driver has no guest memory to check (host ${this.env.HOST_ID}, VM ${r.vmId}): only DRIVER=qemu runs real guests`);
    }
    const c = await this.driver.checkMemory(r.vmId);
    const guestAdvancing = c.advancedAfterCheck;
    const detail =
      c.badPages === 0
        ? `${c.pages} pages hold the workload's pattern${c.boundaryPage === null ? '' : ` (the guest was at page ${c.boundaryPage} of its pass)`}; the guest ${guestAdvancing ? 'advanced after the check' : 'did NOT advance after the check'}`
        : `${c.badPages} of ${c.pages} pages break the pattern, e.g. ${c.examples
            .slice(0, 3)
            .map((e) => `0x${e.address.toString(16)}: ${e.value} after ${e.previous}`)
            .join(', ')}`;
    return { vmId: r.vmId, ok: c.badPages === 0 && guestAdvancing, pagesChecked: c.pages, badPages: c.badPages, guestAdvancing, detail };
  }

  /** What the VM's guest sees of its CPU against the baseline inventory recorded (issue 12). */
  @MessagePattern(CheckVmCpu.subject)
  async checkCpu(r: RequestOf<typeof CheckVmCpu>): Promise<ReplyOf<typeof CheckVmCpu>> {
    const check = guestCpuCheck(this.env.HOST_ID, r, await this.driver.guestCpu(r.vmId));
    if (!check.ok) this.log.warn(`VM ${r.vmId}: its guest does not see baseline ${check.baseline}: missing [${check.missing.join(', ')}], extra [${check.extra.join(', ')}]`);
    return check;
  }
}
