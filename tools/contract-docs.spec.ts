import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Parser } from '@asyncapi/parser';
import { allEventContracts } from '@flexmig/contracts';
import { EVENTS_STREAM_POLICY } from '@flexmig/messaging';
import { mergeOpenApi, type OpenApiDocument, previewOpenApiDocument } from '@flexmig/service-kit';
import { validateOpenApi, operationsOf } from '@flexmig/testing';
import { ConsoleModule } from '../apps/console/src/console.module';
import { asyncApiDocument, contractDocFiles, eventSchemas, MERGED_OPENAPI_INFO, mergedOpenApi } from './contract-docs';

// The generated contract documents (tools/contract-docs.ts): valid by standard validators, and checked in
// as generated. FLEXMIG_WRITE_CONTRACT_DOCS=1 (`npm run contract-docs`) writes them instead of comparing.
const root = path.resolve(__dirname, '..');
const write = process.env.FLEXMIG_WRITE_CONTRACT_DOCS === '1';

describe('contract documents', () => {
  it('the merged OpenAPI document of the three services is valid, with every operation of each (and so is docs/openapi.json)', async () => {
    const merged = await mergedOpenApi();
    await expect(validateOpenApi(merged)).resolves.toBeUndefined();
    await expect(validateOpenApi(JSON.parse(readFileSync(path.join(root, 'docs/openapi.json'), 'utf8')))).resolves.toBeUndefined();
    const routes = operationsOf(merged as Parameters<typeof operationsOf>[0]).map((o) => o.route);
    for (const expected of ['POST /api/v1/migrations', 'GET /api/v1/hosts/:id', 'POST /api/v1/cpu/plan', 'PUT /api/v1/clusters/:clusterId/migration-settings']) {
      expect(routes).toContain(expected);
    }
  });

  it("what the console serves at /api/v1/openapi.json (its own live streams' document merged with the three) is valid", async () => {
    const own = await previewOpenApiDocument(ConsoleModule.forRoot({ bus: undefined as never, config: {} as never }), { name: 'console', description: 'live streams' });
    const merged = mergeOpenApi([{ service: 'console', document: own as unknown as OpenApiDocument }, { service: 'services', document: await mergedOpenApi() }], MERGED_OPENAPI_INFO);
    await expect(validateOpenApi(merged)).resolves.toBeUndefined();
    expect(Object.keys(merged.paths ?? {})).toContain('/api/v1/events');
  });

  it('the AsyncAPI document is valid AsyncAPI 3.0 (@asyncapi/parser: no error nor warning), generated and checked in', async () => {
    const checkedIn = readFileSync(path.join(root, 'docs/asyncapi.yaml'), 'utf8');
    const diagnostics = [...(await new Parser().validate(JSON.stringify(asyncApiDocument()))), ...(await new Parser().validate(checkedIn))];
    // severity 0 error, 1 warning; 2 and 3 are hints (e.g. that AsyncAPI 3.1 exists)
    expect(diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`)).toEqual([]);
  });

  it('has a data schema per event type, and the envelope', () => {
    expect(Object.keys(eventSchemas()).sort()).toEqual(['cloudevent.json', ...allEventContracts().map((e) => `${e.type}.json`)].sort());
  });

  it('docs/events.md names every event type and states the stream policy the code configures', () => {
    const md = readFileSync(path.join(root, 'docs/events.md'), 'utf8');
    expect(allEventContracts().filter((e) => !md.includes(`\`${e.type}\``)).map((e) => e.type)).toEqual([]);
    const p = EVENTS_STREAM_POLICY;
    const rows = [
      `| Retention | ${p.retention} |`,
      `| Max age | ${p.maxAgeMs / 86_400_000} days |`,
      `| Discard | ${p.discard} |`,
      `| Duplicate window | ${p.duplicateWindowMs / 60_000} minutes |`,
      `| Storage | ${p.storage} |`,
      `| Replicas | ${p.replicas} |`,
    ];
    expect(rows.filter((r) => !md.includes(r))).toEqual([]);
  });

  it(write ? 'writes the checked-in files' : 'the checked-in files are what the contracts make (npm run contract-docs)', async () => {
    const files = await contractDocFiles();
    const schemasDir = path.join(root, 'docs/events/schemas');
    if (write) {
      mkdirSync(schemasDir, { recursive: true });
      for (const [file, content] of Object.entries(files)) writeFileSync(path.join(root, file), content);
    }
    const stale = Object.entries(files)
      .filter(([file, content]) => !existsSync(path.join(root, file)) || readFileSync(path.join(root, file), 'utf8') !== content)
      .map(([file]) => file);
    expect({ stale, fix: 'npm run contract-docs' }).toEqual({ stale: [], fix: 'npm run contract-docs' });
    // no schema file of an event type that no longer exists
    const extra = readdirSync(schemasDir).filter((f) => !(`docs/events/schemas/${f}` in files));
    expect(extra).toEqual([]);
  });
});
