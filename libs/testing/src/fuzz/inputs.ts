import fc from 'fast-check';
import type { z } from 'zod';
import { type ArbitraryOptions, boundaryArbitrary, validArbitrary } from './zod-arbitrary';

/**
 * The five kinds of input every route and subject gets (issue 10, item 9):
 * - valid: from the schema, refinements included;
 * - boundary: every leaf at, or just beyond, its edges (empty, longest, min/max, unicode);
 * - mutated: a valid value with one field dropped, retyped, or an extra field added;
 * - junk: random JSON of any shape, and bytes that are not JSON at all;
 * - oversized: a body beyond the receiver's limit, or one just under it that is deep or wide.
 */
export const CATEGORIES = ['valid', 'boundary', 'mutated', 'junk', 'oversized'] as const;
export type Category = (typeof CATEGORIES)[number];

/** A body as it goes on the wire: a value to JSON-encode, or raw text/bytes sent as they are. */
export type WireBody = { json: unknown } | { raw: string | Uint8Array };

const jsonSafe = (v: unknown): unknown => (v === undefined ? null : v);

/** Paths (keys from the root) of every member of every object and array in a value. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...pathsOf(v, [...prefix, i])]);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...pathsOf(v, [...prefix, k])]);
  return [];
}

const clone = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function parentOf(root: unknown, path: (string | number)[]): { parent: Record<string | number, unknown>; key: string | number } {
  let node = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  return { parent: node, key: path[path.length - 1] };
}

/** A value of another JSON type than `v` (a string for a number, an object for a string, …). */
const retyped = (v: unknown): fc.Arbitrary<unknown> =>
  fc.constantFrom<unknown>('1', 1, -1, 1.5, true, null, [], {}, [v], { value: v }, 'true', '', 'null').filter((r) => typeof r !== typeof v || Array.isArray(r) !== Array.isArray(v));

/** A valid value with one change: a member dropped, given another type, or an extra member added (at any depth). */
export function mutatedArbitrary(schema: z.ZodType, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  return validArbitrary(schema, options).chain((valid) => {
    const paths = pathsOf(valid);
    const isObject = (v: unknown) => Boolean(v) && typeof v === 'object' && !Array.isArray(v);
    const valueAt = (path: (string | number)[]) => (path.length ? parentOf(valid, path).parent[path[path.length - 1]] : valid);
    const objects = [[], ...paths].filter((p) => isObject(valueAt(p)));
    const extra = fc.tuple(fc.constantFrom(...(objects.length ? objects : [[]])), fc.string({ minLength: 1, maxLength: 16 }), fc.jsonValue({ maxDepth: 1 })).map(([path, key, v]) => {
      const out = clone(valid) as Record<string, unknown>;
      const target = path.length ? (parentOf(out, [...path, key]).parent as Record<string, unknown>) : out;
      if (isObject(target)) target[key === '__proto__' ? 'proto' : key] = v;
      return isObject(out) ? out : { value: valid, [key]: v };
    });
    if (!paths.length) return fc.oneof(extra, retyped(valid));
    const drop = fc.constantFrom(...paths).map((path) => {
      const out = clone(valid);
      const { parent, key } = parentOf(out, path);
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      return out;
    });
    const retype = fc.constantFrom(...paths).chain((path) => {
      const { parent, key } = parentOf(valid, path);
      return retyped(parent[key]).map((r) => {
        const out = clone(valid);
        parentOf(out, path).parent[key] = r;
        return out;
      });
    });
    return fc.oneof(drop, retype, extra);
  });
}

/** Random JSON of any shape, and bodies that are not JSON (truncated, binary, invalid UTF-8, deeply nested). */
export const junkArbitrary: fc.Arbitrary<WireBody> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((json) => ({ json: jsonSafe(json) })),
  fc.constantFrom('{', '{"a":', '[1,2', 'undefined', 'NaN', "{'single': 1}", '{"a":1}{"b":2}', '\u0000', '').map((raw) => ({ raw })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((raw) => ({ raw })),
  fc.string({ unit: 'binary', maxLength: 64 }).map((raw) => ({ raw })),
  fc.integer({ min: 500, max: 3_000 }).map((depth) => ({ raw: '['.repeat(depth) + ']'.repeat(depth) })),
);

/** Bodies around a size limit: a string, an array and an object member that together pass `bytes`. */
export function oversizedArbitrary(schema: z.ZodType, bytes: number, options: ArbitraryOptions = {}): fc.Arbitrary<WireBody> {
  return fc.oneof(
    validArbitrary(schema, options).map((v) => {
      const base = v && typeof v === 'object' && !Array.isArray(v) ? v : { value: v };
      return { json: { ...base, padding: 'x'.repeat(bytes) } };
    }),
    fc.constant({ json: Array.from({ length: Math.ceil(bytes / 2) }, () => 0) }),
    fc.constant({ raw: `{"a":"${'y'.repeat(bytes)}"}` }),
    fc.constant({ json: Object.fromEntries(Array.from({ length: Math.ceil(bytes / 16) }, (_, i) => [`k${i}`, i])) }),
  );
}

/** Inputs of one category for one schema (bodies as they go on the wire). */
export function inputArbitrary(category: Category, schema: z.ZodType, opts: ArbitraryOptions & { oversizeBytes: number }): fc.Arbitrary<WireBody> {
  switch (category) {
    case 'valid':
      return validArbitrary(schema, opts).map((json) => ({ json }));
    case 'boundary':
      return boundaryArbitrary(schema, opts).map((json) => ({ json: jsonSafe(json) }));
    case 'mutated':
      return mutatedArbitrary(schema, opts).map((json) => ({ json: jsonSafe(json) }));
    case 'junk':
      return junkArbitrary;
    case 'oversized':
      return oversizedArbitrary(schema, opts.oversizeBytes, opts);
  }
}

/** `n` samples of an arbitrary, reproducible from `seed` (printed with every failure). */
export function samples<T>(arb: fc.Arbitrary<T>, n: number, seed: number): T[] {
  return n > 0 ? fc.sample(arb, { numRuns: n, seed }) : [];
}

/** Bytes of a wire body, and whether it is JSON (for the content type). */
export function encodeBody(body: WireBody): Uint8Array {
  if ('json' in body) return new TextEncoder().encode(JSON.stringify(body.json));
  return typeof body.raw === 'string' ? new TextEncoder().encode(body.raw) : body.raw;
}
