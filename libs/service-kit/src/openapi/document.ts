import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { BEARER_SCHEME, ROLE_EXTENSION } from '@flexmig/contracts';
import { resolveComponents } from './components';
import { pathParameterSchemas, withPathParameterSchemas } from './path-params';

export const OPENAPI_VERSION = '3.0.3';

export interface OpenApiInfo {
  /** `inventory`, `scheduler`, `cpu-compat` */
  name: string;
  description: string;
  version?: string;
}

/**
 * A service's OpenAPI document, as it serves it at /api/docs-json: its routes (Nest's scan of the
 * controllers), the bearer scheme with each operation's role (`x-flexmig-role`), and every body, response
 * and error schema as a component converted from the zod contracts (and each path parameter's schema, from
 * the ZodPipe that validates it). `app` may be a preview app
 * (`NestFactory.create(module, { preview: true })`: nothing connected), which is how the tests and
 * docs/openapi.json get the same document without a database.
 */
export function openApiDocument(app: INestApplication, info: OpenApiInfo): OpenAPIObject {
  const config = new DocumentBuilder()
    .setOpenAPIVersion(OPENAPI_VERSION)
    .setTitle(`flexmig ${info.name}`)
    .setDescription(info.description)
    .setVersion(info.version ?? '0.1.0')
    .setLicense('Apache-2.0', 'https://www.apache.org/licenses/LICENSE-2.0')
    .addServer('/', 'the service that serves this document (or the console, which routes /api/v1 to it)')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A flexmig token (docs/security.md, "HTTP")' }, BEARER_SCHEME)
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  return resolveComponents(withRoleDescriptions(withPathParameterSchemas(JSON.parse(JSON.stringify(doc)) as OpenAPIObject, pathParameterSchemas(app))));
}

/** Each operation's description says the role it needs (a reader sees it; a tool reads `x-flexmig-role`). */
function withRoleDescriptions(doc: OpenAPIObject): OpenAPIObject {
  for (const item of Object.values(doc.paths)) {
    for (const op of Object.values(item) as { description?: string; [ROLE_EXTENSION]?: string }[]) {
      const role = op[ROLE_EXTENSION];
      if (role) op.description = [`Requires a bearer token with the \`${role}\` role (or a higher one).`, op.description].filter(Boolean).join('\n\n');
    }
  }
  return doc;
}

/** The document of a module with nothing connected (a preview app: no providers are made), as its service serves it. */
export async function previewOpenApiDocument(module: Type | DynamicModule, info: OpenApiInfo): Promise<OpenAPIObject> {
  const app = await NestFactory.create(module, { preview: true, logger: false, abortOnError: false });
  try {
    return openApiDocument(app, info);
  } finally {
    await app.close();
  }
}
