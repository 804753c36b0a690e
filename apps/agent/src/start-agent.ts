import { natsBusEnv, type RunningService, startService } from '@flexmig/service-kit';
import { AgentEnv } from './config';
import { AgentModule } from './agent.module';
import { HypervisorDriver } from './drivers/driver';

/**
 * The agent as a service: /health and /metrics over HTTP, its commands over NATS on its host's subjects.
 * It listens once its module is built, which is when its driver's VMs and its step ledger are back from
 * disk (AgentStateStore, LedgerStore): a restarted agent answers no command from an empty memory.
 */
export function startAgentService(env: AgentEnv, driver: HypervisorDriver): Promise<RunningService> {
  return startService({
    name: 'agent',
    description: `flexmig agent of host ${env.HOST_ID} (${env.DRIVER} driver): /health and /metrics; commands arrive over NATS.`,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    logFormat: env.LOG_FORMAT,
    bus: natsBusEnv(env),
    events: false, // publishes no events: its identity may not create the stream
    subjectParams: { hostId: env.HOST_ID },
    queue: null,
    openApi: false,
    module: (bus) => AgentModule.forRoot({ bus, env, driver }),
  });
}
