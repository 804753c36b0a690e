import { httpRoutesOfModule, previewOpenApiDocument } from '@flexmig/service-kit';
import { describeOpenApiDocument } from '@flexmig/testing';
import { openApiInfo, routesModule } from './openapi';

// The document this service serves, as its own openApiDocument makes it, against a standard validator and its routes.
const definition = routesModule();
describeOpenApiDocument(openApiInfo.name, () => previewOpenApiDocument(definition, openApiInfo), httpRoutesOfModule(definition));
