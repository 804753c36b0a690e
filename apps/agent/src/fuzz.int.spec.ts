import { controllersOfModule, routesOf } from '@flexmig/service-kit';
import { describeFuzz, FUZZ_HOST_ID } from '@flexmig/testing';
import { AgentModule } from './agent.module';
import type { AgentEnv } from './config';

// Every NATS subject of a (sim) agent, fuzzed from the contracts (libs/testing/src/fuzz), on the agent as a
// real process beside inventory and cpu-compat; its HTTP routes are public (/health, /metrics). FUZZ_RUNS sets the size of the run.
describeFuzz('agent', {
  controllers: controllersOfModule(AgentModule.forRoot({ bus: undefined as never, env: { HOST_ID: FUZZ_HOST_ID } as AgentEnv, driver: undefined as never })),
  routesOf,
  stack: ['cpu-compat', 'inventory', 'agent'],
  subjectParams: { hostId: FUZZ_HOST_ID },
});
