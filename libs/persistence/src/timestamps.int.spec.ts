/**
 * A service's connections read timestamptz with parseTimestamptz (serviceDataSourceOptions): against real
 * PostgreSQL, in time zones east and west of UTC, with half-hour offsets and the seconds of a zone's local
 * mean time, each value is the instant PostgreSQL holds, as the driver's own parser reads it.
 */
import { Client, types } from 'pg';
import { DataSource } from 'typeorm';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import { ensureDatabaseAndSchema, serviceDataSourceOptions } from './database';
import { serviceTypeParsers, TIMESTAMPTZ_OID } from './timestamps';

const ZONES = ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'America/Los_Angeles', 'Europe/Amsterdam', 'Pacific/Chatham'];
// microseconds (rounding would go past the second), a whole second, before 1900 (local mean time: offsets with seconds), a year before 100, BC, infinity
const VALUES = `SELECT v, v::text AS text FROM (VALUES ('2026-12-04 10:05:03.999999Z'::timestamptz), ('2026-12-04 10:05:03.123456Z'::timestamptz), ('2026-03-29 01:00:00Z'), ('1850-06-01 12:00:00.5Z'),
  ('0050-01-01 00:00:00Z'), ('0044-03-15 12:00:00Z BC'), ('infinity'), ('-infinity')) AS t(v)`;

describe('timestamptz on a service connection', () => {
  jest.setTimeout(30_000);
  let db: TestDatabase;
  let ds: DataSource;
  let plain: Client;

  beforeAll(async () => {
    db = await startTestDatabase('timestamps');
    await ensureDatabaseAndSchema(db.url, 'public');
    ds = await new DataSource(serviceDataSourceOptions({ url: db.url, schema: 'public', entities: [], migrations: [], poolSize: 1 })).initialize();
    plain = new Client({ connectionString: db.url });
    await plain.connect();
  });
  afterAll(async () => {
    await plain?.end();
    await ds?.destroy();
    await db?.stop();
  });

  it("parses with the service's type parsers: the pool's clients are given them", () => {
    const pool = (ds.driver as unknown as { master: { options: { types?: unknown } } }).master;
    expect(pool.options.types).toBe(serviceTypeParsers);
  });

  it.each(ZONES)('reads each value as the driver does, with the session in %s', async (zone) => {
    const runner = ds.createQueryRunner();
    try {
      await runner.query(`SET TimeZone = '${zone}'`);
      await plain.query(`SET TimeZone = '${zone}'`);
      const ours: { v: unknown; text: string }[] = await runner.query(VALUES);
      const driver = types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (t: string) => unknown;
      const theirs = (await plain.query(VALUES)).rows as { v: unknown; text: string }[];
      expect(ours.map((r) => r.text)).toEqual(theirs.map((r) => r.text));
      const value = (v: unknown) => (v instanceof Date ? v.getTime() : v);
      expect(ours.map((r) => value(r.v))).toEqual(theirs.map((r) => value(r.v)));
      expect(ours.map((r) => value(r.v))).toEqual(theirs.map((r) => value(driver(r.text))));
      expect(ours[1]!.v).toEqual(new Date('2026-12-04T10:05:03.123Z'));
    } finally {
      await runner.release();
    }
  });
});
