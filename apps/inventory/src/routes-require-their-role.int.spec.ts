import { httpRoutesOfModule } from '@flexmig/service-kit';
import { describeRouteAuth } from '@flexmig/testing';
import { routesModule } from './openapi';

// Every route of inventory's module against its role, on inventory as a real process.
describeRouteAuth('inventory', httpRoutesOfModule(routesModule()), { database: true });
