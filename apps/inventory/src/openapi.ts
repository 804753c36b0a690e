import type { OpenApiInfo } from '@flexmig/service-kit';
import { InventoryModule } from './inventory.module';

/** What inventory's OpenAPI document says of it (main.ts, the document tests and docs/openapi.json). */
export const openApiInfo: OpenApiInfo = { name: 'inventory', description: 'Clusters, hosts (CPU, capacity, liveness) and VMs: where each VM runs.' };

/** Inventory's module definition with nothing connected: its routes, for a preview app's document and the route tests. */
export const routesModule = () =>
  InventoryModule.forRoot({
    bus: undefined as never,
    databaseUrl: 'postgres://unused/x',
    config: { hostDownAfterMs: 1, hostCheckIntervalMs: 1, massSilence: { share: 1, minHosts: 0 }, heartbeatFlushMs: 1, vmStartTimeoutMs: 1, reconcileIntervalMs: 1 },
  });
