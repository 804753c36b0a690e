import { controllersOfModule, routesOf } from '@flexmig/service-kit';
import { describeFuzz } from '@flexmig/testing';
import { InventoryModule } from './inventory.module';

// Every HTTP route and NATS subject of inventory, fuzzed from the contracts (libs/testing/src/fuzz), on
// inventory as a real process beside cpu-compat and one sim agent. FUZZ_RUNS sets the size of the run.
const config = { hostDownAfterMs: 1, hostCheckIntervalMs: 1, vmStartTimeoutMs: 1 };
describeFuzz('inventory', {
  controllers: controllersOfModule(InventoryModule.forRoot({ bus: undefined as never, databaseUrl: 'postgres://unused/x', config })),
  routesOf,
  stack: ['cpu-compat', 'inventory', 'agent'],
});
