// The contract documents for the outside, generated from the zod contracts (libs/contracts) and the
// services' own OpenAPI documents, so that none of them is copied by hand and drifts:
//   docs/openapi.json              the three services' OpenAPI documents merged (what the console serves)
//   docs/events/schemas/*.json     a JSON Schema (draft-07) per event type's CloudEvents `data`, and the envelope
//   docs/asyncapi.yaml             AsyncAPI 3.0: the events stream's subjects and messages, and the NATS
//                                  request/reply and message subjects
// `npm run contract-docs` writes them; tools/contract-docs.spec.ts fails when a checked-in file is not
// what this makes (and validates each document with a standard validator).
import { stringify } from 'yaml';
import { z } from 'zod';
import {
  allContracts,
  allEventContracts,
  CloudEventSchema,
  ErrorBodySchema,
  EVENTS_STREAM_SUFFIX,
  eventsSubjectRoot,
  replyEnvelopeOf,
  type MessageContract,
  type RequestContract,
} from '@flexmig/contracts';
import { EVENTS_STREAM_POLICY } from '@flexmig/messaging';
import { mergeOpenApi, type OpenApiDocument, previewOpenApiDocument } from '@flexmig/service-kit';
import * as cpuCompat from '../apps/cpu-compat/src/openapi';
import * as inventory from '../apps/inventory/src/openapi';
import * as scheduler from '../apps/scheduler/src/openapi';

export const MERGED_OPENAPI_INFO = {
  title: 'flexmig',
  description:
    'Live migration of running VMs across hosts of different CPU generations: inventory, scheduler and cpu-compat behind one base URL ' +
    '(FLEXMIG_URL). Every /api/v1 route takes a bearer token; each operation names the role it needs in x-flexmig-role (docs/security.md).',
  version: '0.1.0',
};

/** The three services' documents, each as the service serves it, merged into one. */
export async function mergedOpenApi() {
  const parts = [];
  for (const { routesModule, openApiInfo } of [inventory, scheduler, cpuCompat]) parts.push({ service: openApiInfo.name, document: (await previewOpenApiDocument(routesModule(), openApiInfo)) as unknown as OpenApiDocument });
  return mergeOpenApi(parts, MERGED_OPENAPI_INFO);
}

const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

/** A contract schema as JSON Schema draft-07, as the contract accepts it (what a subscriber may validate with). */
function draft07(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { target: 'draft-07', io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
  if (JSON.stringify(json).includes('"$ref"')) throw new Error('a contract schema converted with a $ref: inline it or extend contract-docs.ts');
  return json;
}

const CLOUDEVENT_FILE = 'cloudevent.json';

/** `docs/events/schemas/<file>` → schema: the envelope, and each event type's `data`. */
export function eventSchemas(): Record<string, Record<string, unknown>> {
  const files: Record<string, Record<string, unknown>> = {
    [CLOUDEVENT_FILE]: {
      $schema: DRAFT_07,
      title: 'flexmig CloudEvent (1.0, structured JSON)',
      description: 'The envelope of every flexmig event on the events stream; `data` is described per `type` by <type>.json beside this file.',
      ...draft07(CloudEventSchema),
    },
  };
  for (const event of [...allEventContracts()].sort((a, b) => a.type.localeCompare(b.type))) {
    files[`${event.type}.json`] = { $schema: DRAFT_07, title: `${event.type} data`, description: event.description, ...draft07(event.data) };
  }
  return files;
}

/** A subject template's parameters (`agent.{hostId}.vm.start` → hostId), and a component key without them. */
const paramsOf = (subject: string) => [...subject.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
const keyOf = (subject: string) => subject.replace(/\.?\{\w+\}/g, '');

const parameterDescriptions: Record<string, string> = {
  prefix: "The deployment's subject prefix (SUBJECT_PREFIX), `flexmig` by default.",
  hostId: 'A host id (the agent that owns the subject).',
  migrationId: 'A migration id.',
};

/** The AsyncAPI 3.0 document of the events stream and the NATS subjects, from the contracts. */
export function asyncApiDocument(): Record<string, unknown> {
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = { CloudEvent: draft07(CloudEventSchema), ErrorBody: draft07(ErrorBodySchema) };
  const parameters = (address: string) => Object.fromEntries(['prefix', ...paramsOf(address)].map((p) => [p, { $ref: `#/components/parameters/${p}` }]));

  for (const event of [...allEventContracts()].sort((a, b) => a.type.localeCompare(b.type))) {
    const key = `event.${event.type}`;
    schemas[key] = draft07(event.data);
    messages[key] = {
      name: event.type,
      title: event.type,
      summary: event.description,
      contentType: 'application/json',
      headers: {
        type: 'object',
        properties: {
          'Nats-Msg-Id': { type: 'string', description: 'The CloudEvents `id`: JetStream drops a re-publish with the same id within the duplicate window.' },
          'ce-type': { type: 'string', const: event.type },
        },
      },
      payload: { allOf: [{ $ref: '#/components/schemas/CloudEvent' }, { type: 'object', properties: { type: { const: event.type }, data: { $ref: `#/components/schemas/${key}` } } }] },
    };
    channels[key] = {
      address: `{prefix}.${eventsSubjectRoot}.${event.type}`,
      title: event.type,
      description: `${event.description} On the events stream (JetStream \`<PREFIX>_${EVENTS_STREAM_SUFFIX}\`, docs/events.md).`,
      parameters: parameters(''),
      messages: { [event.type]: { $ref: `#/components/messages/${key}` } },
    };
    operations[`publish.${event.type}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${key}` },
      summary: `flexmig publishes ${event.type} to the events stream.`,
      messages: [{ $ref: `#/channels/${key}/messages/${event.type}` }],
    };
  }

  const contracts = [...allContracts()].sort((a, b) => a.subject.localeCompare(b.subject));
  for (const contract of contracts) {
    const key = keyOf(contract.subject);
    if (channels[key]) throw new Error(`two contracts make the AsyncAPI key ${key}`);
    const address = `{prefix}.${contract.subject}`;
    if (contract.kind === 'message') {
      schemas[key] = draft07((contract as MessageContract).message);
      messages[key] = { name: key, summary: contract.description, contentType: 'application/json', payload: { $ref: `#/components/schemas/${key}` } };
      channels[key] = { address, description: contract.description, parameters: parameters(contract.subject), messages: { message: { $ref: `#/components/messages/${key}` } } };
      operations[`send.${key}`] = { action: 'send', channel: { $ref: `#/channels/${key}` }, summary: `Core NATS (no history): ${contract.description}`, messages: [{ $ref: `#/channels/${key}/messages/message` }] };
      continue;
    }
    const request = contract as RequestContract;
    schemas[`${key}.request`] = draft07(request.request);
    schemas[`${key}.reply`] = draft07(replyEnvelopeOf(request.reply));
    messages[`${key}.request`] = { name: `${key}.request`, contentType: 'application/json', payload: { $ref: `#/components/schemas/${key}.request` } };
    messages[`${key}.reply`] = {
      name: `${key}.reply`,
      summary: 'The reply envelope: {ok: true, data} with the contract reply, or {ok: false, error} with the error body.',
      contentType: 'application/json',
      payload: { $ref: `#/components/schemas/${key}.reply` },
    };
    channels[key] = { address, description: request.description, parameters: parameters(contract.subject), messages: { request: { $ref: `#/components/messages/${key}.request` } } };
    channels[`${key}.reply`] = {
      address: null,
      description: `The requester's inbox (the NATS reply subject of the request on ${contract.subject}).`,
      messages: { reply: { $ref: `#/components/messages/${key}.reply` } },
    };
    operations[`answer.${key}`] = {
      action: 'receive',
      channel: { $ref: `#/channels/${key}` },
      summary: `Request/reply: ${request.description}`,
      messages: [{ $ref: `#/channels/${key}/messages/request` }],
      reply: { channel: { $ref: `#/channels/${key}.reply` }, messages: [{ $ref: `#/channels/${key}.reply/messages/reply` }] },
    };
  }

  const names = new Set(['prefix', ...contracts.flatMap((c) => paramsOf(c.subject))]);
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'flexmig events and NATS subjects',
      version: '0.1.0',
      description:
        'Events: CloudEvents 1.0 (structured JSON) on the JetStream stream `<PREFIX>_EVENTS`, one subject per type under `<prefix>.events.`; ' +
        'the retention and replay policy is `x-flexmig-stream` here and in docs/events.md, and docs/events/schemas holds each `data` schema. ' +
        'The other subjects are core NATS between the services and the agents: requests answer with a reply envelope, messages (progress) keep no history. ' +
        'Generated from libs/contracts by `npm run contract-docs`.',
    },
    defaultContentType: 'application/json',
    servers: { nats: { host: '127.0.0.1:4222', protocol: 'nats', description: 'NATS_URL; JetStream enabled (nats-server -js).' } },
    channels,
    operations,
    components: {
      schemas,
      messages,
      parameters: Object.fromEntries([...names].sort().map((p) => [p, { description: parameterDescriptions[p] ?? p, ...(p === 'prefix' ? { default: 'flexmig' } : {}) }])),
    },
    'x-flexmig-stream': {
      name: `<PREFIX>_${EVENTS_STREAM_SUFFIX}`,
      subjects: `<prefix>.${eventsSubjectRoot}.>`,
      ...EVENTS_STREAM_POLICY,
    },
  };
}

/** Every generated file, path (from the repository root) → content. */
export async function contractDocFiles(): Promise<Record<string, string>> {
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  const files: Record<string, string> = {
    'docs/openapi.json': json(await mergedOpenApi()),
    'docs/asyncapi.yaml': `# Generated by \`npm run contract-docs\` from libs/contracts: do not edit.\n${stringify(asyncApiDocument(), { lineWidth: 0 })}`,
  };
  for (const [file, schema] of Object.entries(eventSchemas())) files[`docs/events/schemas/${file}`] = json(schema);
  return files;
}
