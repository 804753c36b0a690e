import { DynamicModule, Module } from '@nestjs/common';
import { MessagingModule, NatsBus } from '@flexmig/messaging';
import { HealthModule } from '@flexmig/service-kit';
import { HypervisorDriver } from './drivers/driver';
import { AgentHandlers } from './agent.handlers';
import { FenceHandlers } from './fence.handlers';
import { PredictionHandlers } from './prediction.handlers';
import { HYPERVISOR_DRIVER, MigrationStepsService } from './migration-steps.service';
import { HostPresenceService } from './host-presence.service';
import { AgentStateStore } from './state-store';
import { LedgerStore } from './ledger-store';
import { AGENT_ENV, AgentEnv } from './config';

@Module({})
export class AgentModule {
  static forRoot(opts: { bus: NatsBus; env: AgentEnv; driver: HypervisorDriver }): DynamicModule {
    return {
      module: AgentModule,
      imports: [MessagingModule.forBus(opts.bus, `agent/${opts.env.HOST_ID}`), HealthModule],
      controllers: [AgentHandlers, FenceHandlers, PredictionHandlers],
      providers: [
        { provide: AGENT_ENV, useValue: opts.env },
        { provide: HYPERVISOR_DRIVER, useValue: opts.driver },
        MigrationStepsService,
        HostPresenceService,
        AgentStateStore,
        LedgerStore,
      ],
    };
  }
}
