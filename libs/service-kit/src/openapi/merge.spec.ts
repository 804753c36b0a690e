import { mergeOpenApi, type OpenApiDocument } from './merge';

const doc = (paths: Record<string, Record<string, unknown>>, schemas: Record<string, unknown> = {}): OpenApiDocument => ({
  openapi: '3.0.0',
  info: { title: 'x', version: '1' },
  paths,
  components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  tags: [{ name: 'shared' }],
});
const info = { title: 'flexmig', version: '0.1.0' };

describe('mergeOpenApi', () => {
  it('given three services, then every path of each is in the one document, once, with the tags and the shared scheme once', () => {
    const merged = mergeOpenApi(
      [
        { service: 'inventory', document: doc({ '/api/v1/hosts': { get: {} } }) },
        { service: 'scheduler', document: doc({ '/api/v1/migrations': { get: {}, post: {} } }) },
        { service: 'cpu-compat', document: doc({ '/api/v1/cpu/models': { get: {} } }) },
      ],
      info,
    );
    expect(Object.keys(merged.paths!).sort()).toEqual(['/api/v1/cpu/models', '/api/v1/hosts', '/api/v1/migrations']);
    expect(Object.keys(merged.paths!['/api/v1/migrations'])).toEqual(['get', 'post']);
    expect(merged.components!.securitySchemes).toEqual({ bearer: { type: 'http', scheme: 'bearer' } });
    expect(merged.tags).toEqual([{ name: 'shared' }]);
    expect(merged.info).toEqual(info);
  });

  it('given a schema name two services define differently, then each keeps its own under its name and its refs follow', () => {
    const ref = (n: string) => ({ $ref: `#/components/schemas/${n}` });
    const merged = mergeOpenApi(
      [
        { service: 'inventory', document: doc({ '/api/v1/vms': { get: { responses: { 200: { content: { 'application/json': { schema: ref('View') } } } } } } }, { View: { type: 'object', title: 'vm' }, Same: { type: 'string' } }) },
        { service: 'scheduler', document: doc({ '/api/v1/migrations': { get: { responses: { 200: { content: { 'application/json': { schema: ref('View') } } } } } } }, { View: { type: 'object', title: 'migration' }, Same: { type: 'string' } }) },
      ],
      info,
    );
    expect(Object.keys(merged.components!.schemas!).sort()).toEqual(['Same', 'inventory_View', 'scheduler_View']);
    expect(JSON.stringify(merged.paths!['/api/v1/vms'])).toContain('#/components/schemas/inventory_View');
    expect(JSON.stringify(merged.paths!['/api/v1/migrations'])).toContain('#/components/schemas/scheduler_View');
  });

  it('given the same operation in two documents, then the merge is refused, naming both', () => {
    expect(() =>
      mergeOpenApi([{ service: 'a', document: doc({ '/p': { get: {} } }) }, { service: 'b', document: doc({ '/p': { get: {} } }) }], info),
    ).toThrow('GET /p is in the documents of both a and b');
  });
});
