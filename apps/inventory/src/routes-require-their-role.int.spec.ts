import { httpRoutesOfModule } from '@flexmig/service-kit';
import { describeRouteAuth } from '@flexmig/testing';
import { InventoryModule } from './inventory.module';

// Every route of inventory's module against its role, on inventory as a real process.
const config = { hostDownAfterMs: 1, hostCheckIntervalMs: 1, vmStartTimeoutMs: 1, reconcileIntervalMs: 1 };
describeRouteAuth('inventory', httpRoutesOfModule(InventoryModule.forRoot({ bus: undefined as never, databaseUrl: 'postgres://unused/x', config })), { database: true });
