import { Controller, Inject, Optional } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { CompensateStep, ListAgentVms, QueryMigration, ReplyOf, RequestOf, RunStep, StartVm } from '@flexmig/contracts';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER, MigrationStepsService } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';
import { AgentStateStore } from './state-store';

/** The agent's commands, on `<prefix>.agent.<HOST_ID>.…` only. */
@Controller()
export class AgentHandlers {
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
    return { migrationId: r.migrationId, steps: this.steps.records(r.migrationId, r.step, r.attempt) };
  }
}
