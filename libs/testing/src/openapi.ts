/// <reference types="jest" />
// Jest globals: this helper declares tests (the build compiles it with Node types only).
import SwaggerParser from '@apidevtools/swagger-parser';
import { BEARER_SCHEME, ROLE_EXTENSION } from '@flexmig/contracts';
import type { HttpRoute } from './route-auth';

/** What the checks read of a document. */
export interface OpenApiDoc {
  openapi: string;
  paths: Record<string, object>;
  components?: { securitySchemes?: Record<string, unknown>; schemas?: Record<string, unknown> };
}

/** A document validated by @apidevtools/swagger-parser (it mutates what it reads: give it a copy); throws its errors. */
export async function validateOpenApi(doc: object): Promise<void> {
  await SwaggerParser.validate(structuredClone(doc) as never);
}

/** Every operation of a document as `METHOD /path/:param`, with its role. */
export function operationsOf(doc: OpenApiDoc): { route: string; role: unknown }[] {
  return Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.entries(ops as Record<string, Record<string, unknown>>).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`, role: op[ROLE_EXTENSION] })))
    .sort((a, b) => a.route.localeCompare(b.route));
}

/**
 * The OpenAPI document checks of one service, on `document()`: service-kit's `previewOpenApiDocument` of its
 * module (what the running service serves at /api/docs-json, which describeRouteAuth compares), and
 * `routes`, its module's `httpRoutesOfModule` (this library cannot import service-kit: it imports us):
 * a standard validator finds no error; every route the module registers (but /health and /metrics) is an
 * operation with its role and the bearer scheme; each operation answers its errors with the error body.
 */
export function describeOpenApiDocument(service: string, document: () => Promise<OpenApiDoc>, routes: HttpRoute[]): void {
  describe(`${service}: the OpenAPI document`, () => {
    let doc: OpenApiDoc;
    beforeAll(async () => {
      doc = await document();
    });

    it('is valid OpenAPI 3.0 (swagger-parser finds no error)', async () => {
      expect(doc.openapi).toBe('3.0.3');
      await expect(validateOpenApi(doc)).resolves.toBeUndefined();
    });

    it('has every route the service registers, with its role', () => {
      const expected = routes
        .filter((r) => r.access !== 'public')
        .map((r) => ({ route: `${r.method} ${r.path}`, role: r.access }))
        .sort((a, b) => a.route.localeCompare(b.route));
      expect(operationsOf(doc)).toEqual(expected);
    });

    it('declares the bearer scheme, and gives each operation one success and its errors, each with a component schema', () => {
      expect(doc.components?.securitySchemes?.[BEARER_SCHEME]).toMatchObject({ type: 'http', scheme: 'bearer' });
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops as Record<string, { security?: unknown; responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }>)) {
          const where = `${method.toUpperCase()} ${path}`;
          expect({ where, security: op.security }).toEqual({ where, security: [{ [BEARER_SCHEME]: [] }] });
          const refs = Object.entries(op.responses).map(([status, response]) => ({ status, ref: response.content?.['application/json']?.schema?.$ref }));
          for (const { status, ref } of refs.filter((r) => Number(r.status) >= 400)) expect({ where, status, ref }).toEqual({ where, status, ref: '#/components/schemas/ErrorBody' });
          const successes = refs.filter((r) => r.status.startsWith('2'));
          expect({ where, successes: successes.length }).toEqual({ where, successes: 1 });
          expect({ where, ref: successes[0].ref }).toEqual({ where, ref: expect.stringMatching(/^#\/components\/schemas\/\w+$/) });
        }
      }
    });
  });
}
