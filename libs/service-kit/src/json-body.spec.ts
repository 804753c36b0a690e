import fc from 'fast-check';
import { JSON_PIECE_ITEMS, jsonBody } from './json-body';

const text = (body: string | Buffer): string => (typeof body === 'string' ? body : body.toString('utf8'));
const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `host-${i}`, n: i, ok: i % 2 === 0, at: new Date(Date.UTC(2026, 11, 3, 0, 0, i)) }));

describe('jsonBody', () => {
  it('writes what JSON.stringify writes, for any JSON-like value, long lists anywhere in it', () => {
    const leaf = fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: false }), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.date({ noInvalidDate: true }));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, tie('list'), tie('record')),
      list: fc.oneof(fc.array(tie('node'), { maxLength: 5 }), fc.array(leaf, { minLength: JSON_PIECE_ITEMS - 1, maxLength: 3 * JSON_PIECE_ITEMS + 2 })),
      record: fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('0', '7', '__proto__', 'items')), tie('node'), { maxKeys: 6 }),
    }));
    fc.assert(
      fc.property(value.record, fc.array(leaf, { minLength: JSON_PIECE_ITEMS + 1, maxLength: 2 * JSON_PIECE_ITEMS + 1 }), (record, long) => {
        expect(text(jsonBody(record))).toBe(JSON.stringify(record));
        expect(text(jsonBody(long))).toBe(JSON.stringify(long));
        const page = { ...record, items: long, nextCursor: 'c' };
        expect(text(jsonBody(page))).toBe(JSON.stringify(page));
      }),
      { numRuns: 200 },
    );
  });

  it('writes a page in pieces only when a list is longer than one piece, at the piece sizes around it', () => {
    for (const n of [0, 1, JSON_PIECE_ITEMS, JSON_PIECE_ITEMS + 1, 2 * JSON_PIECE_ITEMS, 2 * JSON_PIECE_ITEMS + 1, 1000]) {
      const page = { items: items(n), featureSets: { a: ['x', 'y'] }, nextCursor: n ? `host-${n - 1}` : null };
      const body = jsonBody(page);
      expect(typeof body).toBe(n > JSON_PIECE_ITEMS ? 'object' : 'string');
      expect(text(body)).toBe(JSON.stringify(page));
      expect(JSON.parse(text(body)).items).toHaveLength(n);
    }
  });

  it('leaves out what JSON.stringify leaves out, and keeps text that is no ASCII', () => {
    const page = { skipped: undefined, fn: () => 1, items: [...items(150), undefined, () => 2], name: 'hôte «ü» ☃ \u2028', nested: { items: [] } };
    expect(text(jsonBody(page))).toBe(JSON.stringify(page));
    expect(text(jsonBody({ only: undefined, items: items(101) }))).toBe(JSON.stringify({ items: items(101) }));
    const withToJson = { items: items(101), toJSON: () => ({ replaced: true }) };
    expect(jsonBody(withToJson)).toBe(JSON.stringify(withToJson));
  });

  it('answers values that are no object as JSON.stringify does', () => {
    for (const v of [null, 0, 'x', true, [1, 2], new Date(0)]) expect(jsonBody(v)).toBe(JSON.stringify(v));
    expect(jsonBody(undefined)).toBeUndefined();
  });
});
