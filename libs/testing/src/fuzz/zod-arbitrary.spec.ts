import fc from 'fast-check';
import { z } from 'zod';
import { allContracts, CreateClusterSchema, CreateMigrationSchema, CreateVmSchema, HostIdSchema, SetImcModeSchema, UuidSchema } from '@flexmig/contracts';
import { boundaryArbitrary, validArbitrary, zodArbitrary } from './zod-arbitrary';
import { CATEGORIES, inputArbitrary, mutatedArbitrary, samples } from './inputs';

const schemas: [string, z.ZodType][] = [
  ...allContracts().map((c): [string, z.ZodType] => [c.subject, c.kind === 'request' ? c.request : c.message]),
  ['CreateVm', CreateVmSchema],
  ['CreateCluster', CreateClusterSchema],
  ['CreateMigration', CreateMigrationSchema],
  ['SetImcMode', SetImcModeSchema],
];

describe('zod → fast-check', () => {
  it.each(schemas)('%s: every valid value parses', (_, schema) => {
    fc.assert(fc.property(validArbitrary(schema), (v) => schema.safeParse(v).success), { numRuns: 50 });
  });

  it('generates values that parse before any filter (strict objects, regexes, bounds, optional fields)', () => {
    const schema = z.object({ id: HostIdSchema, n: z.number().int().min(3).max(5), tag: z.enum(['a', 'b']).optional() }).strict();
    fc.assert(fc.property(zodArbitrary(schema), (v) => schema.safeParse(v).success), { numRuns: 200 });
  });

  it('mixes in the seeds of a schema (ids that exist)', () => {
    const seen = samples(zodArbitrary(UuidSchema, { seeds: new Map([[UuidSchema, ['seed-value']]]) }), 100, 1);
    expect(seen).toContain('seed-value');
  });

  it('takes leaves to and beyond their edges at the boundary', () => {
    const schema = z.object({ n: z.number().int().min(1).max(9), s: z.string().max(5) });
    const values = samples(boundaryArbitrary(schema), 300, 7) as { n: number; s: string }[];
    expect(values.some((v) => v.n === 0 || v.n === 10)).toBe(true);
    expect(values.some((v) => v.s.length === 6)).toBe(true);
    expect(values.some((v) => !schema.safeParse(v).success)).toBe(true);
  });

  it('mutates a valid value so that a strict contract refuses it, most of the time', () => {
    const values = samples(mutatedArbitrary(CreateVmSchema), 200, 3);
    expect(values.filter((v) => !CreateVmSchema.safeParse(v).success).length).toBeGreaterThan(150);
  });

  it('names a zod type it cannot generate instead of fuzzing it with nothing', () => {
    expect(() => zodArbitrary(z.bigint())).toThrow(/zod type "bigint"/);
  });

  it.each(CATEGORIES)('makes %s inputs for every contract', (category) => {
    for (const [, schema] of schemas) expect(samples(inputArbitrary(category, schema, { oversizeBytes: 2048 }), 2, 5)).toHaveLength(2);
  });
});
