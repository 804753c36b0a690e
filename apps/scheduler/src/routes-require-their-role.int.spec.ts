import { httpRoutesOfModule } from '@flexmig/service-kit';
import { describeRouteAuth } from '@flexmig/testing';
import { routesModule } from './openapi';

// Every route of the scheduler's module against its role, on the scheduler as a real process.
describeRouteAuth('scheduler', httpRoutesOfModule(routesModule()), { database: true });
