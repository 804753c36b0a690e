import { httpRoutesOfModule } from '@flexmig/service-kit';
import { describeRouteAuth } from '@flexmig/testing';
import { SchedulerModule } from './scheduler.module';

// Every route of the scheduler's module against its role, on the scheduler as a real process.
const config = { schedulerId: 'unused', leaseTtlMs: 1, reconcileIntervalMs: 1, limits: { maxOutboundPerHost: 0, maxInboundPerHost: 0, maxPerCluster: 0 } };
describeRouteAuth('scheduler', httpRoutesOfModule(SchedulerModule.forRoot({ bus: undefined as never, databaseUrl: 'postgres://unused/x', config })), { database: true });
