import fc from 'fast-check';
import { types } from 'pg';
import { parseTimestamptz, serviceTypeParsers, TIMESTAMPTZ_OID } from './timestamps';

// parseTimestamptz against the pg driver's own parser (postgres-date), on the texts PostgreSQL sends for a
// timestamptz (DateStyle ISO) and on the texts its fast path leaves to the driver.
const driver = types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => unknown;
const value = (v: unknown) => (v instanceof Date ? { time: v.getTime() } : v);
const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** A timestamptz's text as PostgreSQL writes it: an offset of hours, hours and minutes, or (LMT zones) seconds too. */
const pgText = fc
  .record({
    year: fc.integer({ min: 100, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 28 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.integer({ min: 0, max: 59 }),
    fraction: fc.option(fc.stringMatching(/^[0-9]{1,6}$/), { nil: undefined }),
    sign: fc.constantFrom('+', '-'),
    offset: fc.tuple(fc.integer({ min: 0, max: 15 }), fc.option(fc.integer({ min: 0, max: 59 }), { nil: undefined }), fc.option(fc.integer({ min: 0, max: 59 }), { nil: undefined })),
  })
  .map(({ year, month, day, hour, minute, second, fraction, sign, offset: [oh, om, os] }) => {
    const zone = `${sign}${pad(oh, 2)}${om === undefined ? '' : `:${pad(om, 2)}${os === undefined ? '' : `:${pad(os, 2)}`}`}`;
    return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)} ${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${fraction === undefined ? '' : `.${fraction}`}${zone}`;
  });

describe('parseTimestamptz', () => {
  it("reads every text PostgreSQL sends for a timestamptz as the driver does, to the millisecond", () => {
    fc.assert(
      fc.property(pgText, (text) => {
        const fast = parseTimestamptz(text);
        expect(fast).toBeInstanceOf(Date);
        expect(value(fast)).toEqual(value(driver(text)));
      }),
      { numRuns: 20_000 },
    );
  });

  it('truncates a fraction to its milliseconds, and takes offsets east and west of UTC', () => {
    expect((parseTimestamptz('2026-12-04 10:05:03.123999+00') as Date).toISOString()).toBe('2026-12-04T10:05:03.123Z');
    expect((parseTimestamptz('2026-12-04 10:05:03.5+00') as Date).toISOString()).toBe('2026-12-04T10:05:03.500Z');
    expect((parseTimestamptz('2026-12-04 15:35:03+05:30') as Date).toISOString()).toBe('2026-12-04T10:05:03.000Z');
    expect((parseTimestamptz('2026-12-04 02:05:03-08') as Date).toISOString()).toBe('2026-12-04T10:05:03.000Z');
    expect((parseTimestamptz('1850-01-01 00:19:32+00:19:32') as Date).toISOString()).toBe('1850-01-01T00:00:00.000Z');
  });

  it.each([
    ['infinity'],
    ['-infinity'],
    ['0099-06-01 12:00:00+00'], // a year before 100: Date.UTC would read it as 1999
    ['0001-01-01 00:00:00+00 BC'],
    ['12026-12-04 10:05:03+00'], // a year after 9999
    ['2026-12-04 10:05:03.+00'], // a fraction without digits
    ['2026-12-04 10:05:03'], // no offset (a timestamp without time zone)
    ['2026-12-04 10:05:03+0'],
    ['2026-12-04 10:05:03+00:3'],
    ['2026-12-04 10:05:03+00:30:00:00'],
    ['2026-12-04T10:05:03.123+00'],
    ['2026-12-04 1x:05:03+00'],
    ['2026-12-04'],
    [''],
  ])('leaves %j to the driver, and answers what it answers', (text) => {
    expect(value(parseTimestamptz(text))).toEqual(value(driver(text)));
  });

  it("takes PostgreSQL's texts without the driver's parser, and hands it only the others", () => {
    const fallback = jest.fn((text: string) => text);
    jest.isolateModules(() => {
      jest.doMock('pg', () => ({ types: { getTypeParser: () => fallback } }));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const isolated = require('./timestamps') as typeof import('./timestamps');
      fc.assert(fc.property(pgText, (text) => void isolated.parseTimestamptz(text)), { numRuns: 1_000 });
      expect(fallback).not.toHaveBeenCalled();
      expect(isolated.parseTimestamptz('infinity')).toBe('infinity');
      expect(fallback).toHaveBeenCalledWith('infinity');
    });
    jest.dontMock('pg');
  });

  it('is what a service connection parses timestamptz with; every other type keeps the driver\'s parser', () => {
    expect(serviceTypeParsers.getTypeParser(TIMESTAMPTZ_OID, 'text')).toBe(parseTimestamptz);
    expect(serviceTypeParsers.getTypeParser(TIMESTAMPTZ_OID)).toBe(parseTimestamptz);
    expect(serviceTypeParsers.getTypeParser(TIMESTAMPTZ_OID, 'binary')).toBe(types.getTypeParser(TIMESTAMPTZ_OID, 'binary'));
    for (const oid of [16, 20, 23, 114, 1114, 3802]) expect(serviceTypeParsers.getTypeParser(oid, 'text')).toBe(types.getTypeParser(oid, 'text'));
  });
});
