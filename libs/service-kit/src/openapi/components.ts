import { z } from 'zod';
import * as contracts from '@flexmig/contracts';

/**
 * The reusable schemas of the OpenAPI documents (`components.schemas`), converted from the zod contracts
 * the services validate with, so that a document cannot drift from what the services accept and answer.
 *
 * A schema's component name is its export name in @flexmig/contracts without `Schema` (`ClusterSchema` is
 * `Cluster`); a schema an app keeps to itself is named with {@link apiSchema}. The documents are OpenAPI
 * 3.0 (zod's `openapi-3.0` target): every generator reads 3.0, and a 3.0 validator checks each Schema
 * Object strictly, where 3.1 lets any JSON Schema through.
 */
export const COMPONENT_PREFIX = '#/components/schemas/';
/** Marks a `$ref` to a schema as a request body sees it (defaults optional); resolved by {@link resolveComponents}. */
const INPUT_MARK = '~input';

export type SchemaObject = Record<string, unknown>;

const local = new Map<string, z.ZodType>();
let named: Map<z.ZodType, string> | undefined;

function names(): Map<z.ZodType, string> {
  if (!named) {
    named = new Map();
    for (const [key, value] of Object.entries(contracts)) {
      // an alias (AgentInstanceIdSchema = UuidSchema) keeps the first name
      if (key.endsWith('Schema') && value instanceof z.ZodType && !named.has(value)) named.set(value, key.slice(0, -'Schema'.length));
    }
  }
  return named;
}

/** Names an HTTP schema that an app keeps to itself (not in @flexmig/contracts), so the document can refer to it. */
export function apiSchema<S extends z.ZodType>(name: string, schema: S): S {
  const taken = [...names().entries()].find(([, n]) => n === name)?.[0] ?? local.get(name);
  if (taken && taken !== schema) throw new Error(`OpenAPI component name ${name} is already used by another schema`);
  local.set(name, schema);
  return schema;
}

/** The component name of a schema, if it has one. */
export const componentNameOf = (schema: z.ZodType): string | undefined => names().get(schema) ?? [...local.entries()].find(([, s]) => s === schema)?.[0];

/** The component name of a schema, or an error that says how to give it one. */
export function componentName(schema: z.ZodType): string {
  const name = componentNameOf(schema);
  if (!name) {
    throw new Error(
      'an OpenAPI body or response schema has no component name: export it from @flexmig/contracts as <Name>Schema, or name it with apiSchema(name, schema)',
    );
  }
  return name;
}

/** `$ref` to a schema's component: as the service answers it (`output`), or as a request may send it (`input`). */
export function componentRef(schema: z.ZodType, io: 'input' | 'output'): { $ref: string } {
  return { $ref: `${COMPONENT_PREFIX}${componentName(schema)}${io === 'input' ? INPUT_MARK : ''}` };
}

/** A one-off schema (a query parameter's), inline: zod's OpenAPI 3.0 form of the input. */
export function inlineSchema(schema: z.ZodType): SchemaObject {
  return convert(schema, 'input');
}

function convert(schema: z.ZodType, io: 'input' | 'output'): SchemaObject {
  return clean(z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'throw', override: openResponses(io) }) as SchemaObject);
}

/**
 * A response object of a plain `z.object` keeps `additionalProperties` open: the service strips unknown keys
 * from what it reads, and a client must accept a field added later (only `.strict()` objects are closed).
 */
function openResponses(io: 'input' | 'output') {
  return ({ zodSchema, jsonSchema }: { zodSchema: unknown; jsonSchema: Record<string, unknown> }) => {
    const def = (zodSchema as { _zod: { def: { type: string; catchall?: unknown } } })._zod.def;
    if (io === 'output' && def.type === 'object' && def.catchall === undefined && jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
  };
}

/** Drops what an OpenAPI 3.0 Schema Object may not carry (zod's `$schema` and `$id`). */
function clean(s: SchemaObject): SchemaObject {
  const { $schema: _s, $id: _i, ...rest } = s;
  return rest;
}

type Converted = Record<string, SchemaObject>;

/** False for a schema JSON Schema cannot describe this way (a transform's output): it is no component of that side. */
function convertible(schema: z.ZodType, io: 'input' | 'output'): boolean {
  try {
    z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'throw' });
    return true;
  } catch {
    return false;
  }
}

function convertAll(io: 'input' | 'output'): Converted {
  const registry = z.registry<{ id: string }>();
  for (const [schema, id] of names()) if (convertible(schema, io)) registry.add(schema, { id });
  for (const [id, schema] of local) if (!names().has(schema) && convertible(schema, io)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, { target: 'openapi-3.0', io, unrepresentable: 'throw', override: openResponses(io), uri: (id) => `${COMPONENT_PREFIX}${id}` });
  return Object.fromEntries(Object.entries(out.schemas).map(([id, s]) => [id, clean(s as SchemaObject)]));
}

function mapRefs(value: unknown, rename: (ref: string) => string): unknown {
  if (Array.isArray(value)) return value.map((v) => mapRefs(v, rename));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? rename(v) : mapRefs(v, rename)]));
  }
  return value;
}

function refsIn(value: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => refsIn(v, into));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith(COMPONENT_PREFIX)) into.add(v.slice(COMPONENT_PREFIX.length));
      else refsIn(v, into);
    }
  }
  return into;
}

/** The `type` a component ends up with, following `$ref`s. */
function typeOf(ref: string, all: Converted, seen = new Set<string>()): unknown {
  const name = ref.slice(COMPONENT_PREFIX.length);
  const target = all[name];
  if (!target || seen.has(name)) return undefined;
  seen.add(name);
  if (target.type !== undefined) return target.type;
  return typeof target.$ref === 'string' ? typeOf(target.$ref, all, seen) : undefined;
}

/**
 * zod writes a nullable reference as `{nullable: true, allOf: [{$ref}]}`; OpenAPI 3.0 gives `nullable` a
 * meaning only beside `type` (linters such as Redocly refuse it without): add the referenced schema's type.
 */
function typeNullableRefs(value: unknown, all: Converted): void {
  if (Array.isArray(value)) return value.forEach((v) => typeNullableRefs(v, all));
  if (!value || typeof value !== 'object') return;
  const s = value as SchemaObject;
  const only = Array.isArray(s.allOf) && s.allOf.length === 1 ? (s.allOf[0] as SchemaObject) : undefined;
  if (s.nullable === true && s.type === undefined && typeof only?.$ref === 'string') {
    const type = typeOf(only.$ref, all);
    if (type !== undefined) s.type = type;
  }
  Object.values(s).forEach((v) => typeNullableRefs(v, all));
}

/**
 * Fills `components.schemas` of a document whose operations refer to components by `$ref`: each schema
 * the document reaches (transitively), converted from its contract. A schema whose request form differs
 * from its response form (a default makes a field optional to send) is a second component, `<Name>Input`.
 */
export function resolveComponents<D extends { components?: { schemas?: Record<string, unknown> } }>(doc: D): D {
  const output = convertAll('output');
  const input = convertAll('input');
  const inputName = (n: string) => (n + 'Input' in output ? `${n}_Input` : `${n}Input`);
  // a schema only a request can have (its output is a transform's): its input form is the component
  const inputOnly = new Set(Object.keys(input).filter((n) => !(n in output)));
  // which names need an input variant: their input form differs, counting refs to inputs that differ (a fixpoint)
  const differs = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of Object.keys(input)) {
      if (differs.has(n) || inputOnly.has(n)) continue;
      const asInput = mapRefs(input[n], (r) => (differs.has(r.slice(COMPONENT_PREFIX.length)) ? `${COMPONENT_PREFIX}${inputName(r.slice(COMPONENT_PREFIX.length))}` : r));
      if (JSON.stringify(asInput) !== JSON.stringify(output[n])) {
        differs.add(n);
        changed = true;
      }
    }
  }
  const inputRef = (n: string) => `${COMPONENT_PREFIX}${differs.has(n) ? inputName(n) : n}`;
  const all: Converted = { ...output };
  for (const n of differs) all[inputName(n)] = mapRefs(input[n], (r) => inputRef(r.slice(COMPONENT_PREFIX.length))) as SchemaObject;
  for (const n of inputOnly) all[n] = mapRefs(input[n], (r) => inputRef(r.slice(COMPONENT_PREFIX.length))) as SchemaObject;

  for (const schema of Object.values(all)) typeNullableRefs(schema, all);

  const resolved = mapRefs(doc, (r) => (r.endsWith(INPUT_MARK) ? inputRef(r.slice(COMPONENT_PREFIX.length, -INPUT_MARK.length)) : r)) as D;
  const needed = new Set<string>();
  const visit = (n: string) => {
    if (needed.has(n)) return;
    if (!all[n]) throw new Error(`the OpenAPI document refers to ${COMPONENT_PREFIX}${n}, which no contract defines in a form JSON Schema can describe (a response with a transform?)`);
    needed.add(n);
    refsIn(all[n]).forEach(visit);
  };
  refsIn({ ...resolved, components: { ...resolved.components, schemas: {} } }).forEach(visit);
  const schemas = Object.fromEntries([...needed].sort().map((n) => [n, all[n]]));
  return { ...resolved, components: { ...resolved.components, schemas: { ...resolved.components?.schemas, ...schemas } } };
}
