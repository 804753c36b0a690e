import type { OpenApiInfo } from '@flexmig/service-kit';
import { SchedulerModule } from './scheduler.module';

/** What the scheduler's OpenAPI document says of it (main.ts, the document tests and docs/openapi.json). */
export const openApiInfo: OpenApiInfo = { name: 'scheduler', description: 'Migrations: admission, the nine-step saga, recovery and cancellation.' };

/** The scheduler's module definition with nothing connected: its routes, for a preview app's document and the route tests. */
export const routesModule = () =>
  SchedulerModule.forRoot({
    bus: undefined as never,
    databaseUrl: 'postgres://unused/x',
    config: { schedulerId: 'unused', leaseTtlMs: 1, reconcileIntervalMs: 1, limits: { maxOutboundPerHost: 0, maxInboundPerHost: 0, maxPerCluster: 0 } },
  });
