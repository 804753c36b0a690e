import { controllersOfModule, routesOf } from '@flexmig/service-kit';
import { describeFuzz, FUZZ_HOST_ID } from '@flexmig/testing';
import { AgentModule } from '../apps/agent/src/agent.module';
import { ConsoleModule } from '../apps/console/src/console.module';
import type { ConsoleConfig } from '../apps/console/src/config';
import type { AgentEnv } from '../apps/agent/src/config';
import { CpuCompatModule } from '../apps/cpu-compat/src/cpu-compat.module';
import { InventoryModule } from '../apps/inventory/src/inventory.module';
import { SchedulerModule } from '../apps/scheduler/src/scheduler.module';

// Every HTTP route and NATS subject of every service (and the console's live streams), fuzzed from the zod contracts (libs/testing/src/fuzz)
// on one stack of real processes (`npm run build` first). The controllers come from each app's root module
// definition, as in the routes-require-their-role tests: nothing here is connected. Outside apps/ because
// it reads all five (an app may not import another). FUZZ_RUNS sets the size of the run (FUZZ_SEED replays one).
const unused = { bus: undefined as never, databaseUrl: 'postgres://unused/x' };
describeFuzz(
  [
    { app: 'inventory', controllers: controllersOfModule(InventoryModule.forRoot({ ...unused, config: { hostDownAfterMs: 1, hostCheckIntervalMs: 1, massSilence: { share: 1, minHosts: 0 }, heartbeatFlushMs: 500, vmStartTimeoutMs: 1, reconcileIntervalMs: 1 } })) },
    {
      app: 'scheduler',
      controllers: controllersOfModule(
        SchedulerModule.forRoot({ ...unused, config: { schedulerId: 'unused', leaseTtlMs: 1, reconcileIntervalMs: 1, limits: { maxOutboundPerHost: 0, maxInboundPerHost: 0, maxPerCluster: 0 } } }),
      ),
    },
    { app: 'cpu-compat', controllers: controllersOfModule(CpuCompatModule.forRoot(undefined as never)) },
    {
      app: 'agent',
      controllers: controllersOfModule(AgentModule.forRoot({ bus: undefined as never, env: { HOST_ID: FUZZ_HOST_ID } as AgentEnv, driver: undefined as never })),
      subjectParams: { hostId: FUZZ_HOST_ID },
    },
    // its own routes: the live streams (the rest is public: the routed /api/v1/* is each service's, fuzzed above)
    { app: 'console', controllers: controllersOfModule(ConsoleModule.forRoot({ bus: undefined as never, config: undefined as unknown as ConsoleConfig })) },
  ],
  routesOf,
);
