import { controllersOfModule, routesOf } from '@flexmig/service-kit';
import { describeFuzz } from '@flexmig/testing';
import { CpuCompatModule } from './cpu-compat.module';

// Every HTTP route and NATS subject of cpu-compat, fuzzed from the contracts (libs/testing/src/fuzz), on
// cpu-compat as a real process beside inventory and one sim agent (the masks of a host). FUZZ_RUNS sets the size of the run.
describeFuzz('cpu-compat', {
  controllers: controllersOfModule(CpuCompatModule.forRoot(undefined as never)),
  routesOf,
  stack: ['cpu-compat', 'inventory', 'agent'],
});
