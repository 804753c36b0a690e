import { controllersOfModule, routesOf } from '@flexmig/service-kit';
import { describeFuzz } from '@flexmig/testing';
import { SchedulerModule } from './scheduler.module';

// Every HTTP route and NATS subject of the scheduler, fuzzed from the contracts (libs/testing/src/fuzz), on
// the scheduler as a real process beside inventory, cpu-compat and one sim agent. FUZZ_RUNS sets the size of the run.
const config = { schedulerId: 'unused', leaseTtlMs: 1, reconcileIntervalMs: 1, limits: { maxOutboundPerHost: 0, maxInboundPerHost: 0, maxPerCluster: 0 } };
describeFuzz('scheduler', {
  controllers: controllersOfModule(SchedulerModule.forRoot({ bus: undefined as never, databaseUrl: 'postgres://unused/x', config })),
  routesOf,
  stack: ['cpu-compat', 'inventory', 'scheduler', 'agent'],
});
