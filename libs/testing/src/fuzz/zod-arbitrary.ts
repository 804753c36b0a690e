import fc from 'fast-check';
import type { z } from 'zod';

/**
 * fast-check arbitraries derived from zod (v4) schemas, so that every contract is fuzzed from its own
 * definition: a new route or subject needs no generator of its own. Covers the zod types the contracts
 * use (strings with lengths, regexes and formats, numbers with bounds, int, booleans, enums, literals,
 * objects (strict, loose), arrays, records, unions, optional, nullable, default, pipes, refinements,
 * unknown); anything else is refused by name, so a contract that uses a new type fails loudly here
 * rather than being fuzzed with nothing.
 */

/** Extra values to mix into a schema's values, by schema identity: ids that exist, so that valid requests reach past "not found". */
export type Seeds = ReadonlyMap<z.ZodType, readonly unknown[]>;

export interface ArbitraryOptions {
  seeds?: Seeds;
  /** Largest array generated for an unbounded array (default 4). */
  maxArray?: number;
}

/** The parts of zod's internal definition read here (zod 4's `_zod.def`). */
interface Def {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  [key: string]: unknown;
}
interface CheckDef {
  check: string;
  format?: string;
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  length?: number;
  value?: number;
  inclusive?: boolean;
  offset?: boolean;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;
const checksOf = (schema: z.ZodType): CheckDef[] => (defOf(schema).checks ?? []).map((c) => c._zod.def);

/** Strings that are not simple: unicode of several planes, control characters, and what breaks naive parsers. */
const nastyStrings = ['', ' ', '\u0000', '\n', '../../etc/passwd', '%00', '${jndi:x}', "'; DROP TABLE hosts; --", '\u202e\u0301', '😀', '\ud800', 'ﬀ'.repeat(3)];

const datetime = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());

function stringArbitrary(schema: z.ZodType, boundary: boolean): fc.Arbitrary<string> {
  const checks = checksOf(schema);
  const min = Math.max(0, ...checks.filter((c) => c.check === 'min_length').map((c) => c.minimum ?? 0));
  const maxes = checks.filter((c) => c.check === 'max_length').map((c) => c.maximum ?? Infinity);
  const max = maxes.length ? Math.min(...maxes) : undefined;
  const formats = checks.filter((c) => c.check === 'string_format');
  const fits = (s: string) => s.length >= min && (max === undefined || s.length <= max);
  let base: fc.Arbitrary<string>;
  const format = formats[0];
  if (format?.format === 'uuid') base = fc.uuid({ version: 4 });
  else if (format?.format === 'datetime') base = datetime;
  else if (format?.format === 'url') base = fc.webUrl();
  else if (format?.format === 'email') base = fc.emailAddress();
  else if (format?.pattern) base = fc.stringMatching(format.pattern).filter(fits);
  else if (format) throw new Error(`fuzz: no arbitrary for zod string format ${format.format}`);
  else base = fc.string({ minLength: min, maxLength: max ?? Math.max(min, 24), unit: 'grapheme' });
  if (!boundary) return base;
  // the edges: shortest and longest allowed, one beyond each, and strings no pattern expects
  const edges: fc.Arbitrary<string>[] = [fc.constantFrom(...nastyStrings), fc.string({ unit: 'binary', maxLength: 40 })];
  if (!format) {
    edges.push(fc.constant('a'.repeat(min)), fc.constant('ü'.repeat(min)));
    if (max !== undefined) edges.push(fc.constant('x'.repeat(max)), fc.constant('x'.repeat(max + 1)), fc.constant('é'.repeat(max)));
  } else if (max !== undefined) {
    edges.push(base.map((s) => s.padEnd(max + 1, s.slice(-1) || 'a')));
  }
  if (min > 0) edges.push(fc.constant('x'.repeat(min - 1)));
  return fc.oneof(base, ...edges);
}

function numberArbitrary(schema: z.ZodType, boundary: boolean): fc.Arbitrary<number> {
  const checks = checksOf(schema);
  const int = checks.some((c) => c.check === 'number_format' && /int/.test(c.format ?? ''));
  let min = -1e9;
  let max = 1e9;
  let minExclusive = false;
  let maxExclusive = false;
  for (const c of checks) {
    if (c.check === 'greater_than' && c.value !== undefined && c.value >= min) [min, minExclusive] = [c.value, !c.inclusive];
    if (c.check === 'less_than' && c.value !== undefined && c.value <= max) [max, maxExclusive] = [c.value, !c.inclusive];
  }
  const base = int
    ? fc.integer({ min: Math.ceil(minExclusive ? min + 1 : min), max: Math.floor(maxExclusive ? max - 1 : max) })
    : fc.double({ min, max, minExcluded: minExclusive, maxExcluded: maxExclusive, noNaN: true, noDefaultInfinity: true });
  if (!boundary) return base;
  const edges = [min, max, min - 1, max + 1, 0, -1, 0.5, -0, Number.MAX_SAFE_INTEGER + 2, -Number.MAX_SAFE_INTEGER - 2, 1e308, -1e308, 2 ** 31, 2 ** 31 - 1, -(2 ** 31) - 1];
  return fc.oneof(base, fc.constantFrom(...edges));
}

/**
 * Values of `schema` as a client would send them (zod's input side): every value parses, unless
 * `boundary`, where leaves also take their edge values and the values just beyond them.
 */
export function zodArbitrary(schema: z.ZodType, options: ArbitraryOptions = {}, boundary = false): fc.Arbitrary<unknown> {
  const seeded = options.seeds?.get(schema);
  const own = build(schema, options, boundary);
  return seeded?.length ? fc.oneof({ arbitrary: fc.constantFrom(...seeded), weight: 1 }, { arbitrary: own, weight: 1 }) : own;
}

function build(schema: z.ZodType, options: ArbitraryOptions, boundary: boolean): fc.Arbitrary<unknown> {
  const def = defOf(schema);
  const child = (s: unknown) => zodArbitrary(s as z.ZodType, options, boundary);
  switch (def.type) {
    case 'string':
      return stringArbitrary(schema, boundary);
    case 'number':
      return numberArbitrary(schema, boundary);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'unknown':
    case 'any':
      return fc.jsonValue({ maxDepth: 2 });
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries as Record<string, string | number>));
    case 'literal':
      return fc.constantFrom(...(def.values as unknown[]));
    case 'optional':
      return fc.option(child(def.innerType), { nil: undefined });
    case 'nullable':
      return fc.option(child(def.innerType), { nil: null });
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return child(def.innerType);
    case 'pipe':
      // the input side is what a client sends; a transform's output is the service's business
      return child(def.in);
    case 'union':
      return fc.oneof(...(def.options as z.ZodType[]).map(child));
    case 'array': {
      const checks = checksOf(schema);
      const minLength = Math.max(0, ...checks.filter((c) => c.check === 'min_length').map((c) => c.minimum ?? 0));
      const maxes = checks.filter((c) => c.check === 'max_length').map((c) => c.maximum ?? Infinity);
      const maxLength = maxes.length ? Math.min(...maxes) : Math.max(minLength, options.maxArray ?? 4);
      return fc.array(child(def.element), { minLength, maxLength });
    }
    case 'record':
      return fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), child(def.valueType), { maxKeys: 4 });
    case 'object': {
      const shape = def.shape as Record<string, z.ZodType>;
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      const requiredKeys: string[] = [];
      for (const [key, field] of Object.entries(shape)) {
        record[key] = child(field);
        if (!acceptsUndefined(field)) requiredKeys.push(key);
      }
      // absent, not `undefined`: JSON has no undefined, and an absent key is what a client sends
      return fc.record(record, { requiredKeys }).map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
    }
    default:
      throw new Error(`fuzz: no arbitrary for zod type "${def.type}" (add it to libs/testing/src/fuzz/zod-arbitrary.ts)`);
  }
}

/** Whether a field may be left out of its object (optional, or with a default). */
function acceptsUndefined(schema: z.ZodType): boolean {
  const def = defOf(schema);
  if (['optional', 'default', 'prefault'].includes(def.type)) return true;
  if (def.type === 'pipe') return acceptsUndefined(def.in as z.ZodType);
  if (def.type === 'readonly' || def.type === 'catch') return acceptsUndefined(def.innerType as z.ZodType);
  return false;
}

/** Values that satisfy the schema, refinements included (a refine the generator cannot see is filtered for). */
export function validArbitrary(schema: z.ZodType, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  return zodArbitrary(schema, options).filter((v) => schema.safeParse(v).success);
}

/** Values at and just beyond the edges of every leaf: some parse, some do not. */
export function boundaryArbitrary(schema: z.ZodType, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  return zodArbitrary(schema, options, true);
}
