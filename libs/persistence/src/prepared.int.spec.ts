/**
 * runPrepared against real PostgreSQL: the statement is parsed once per connection and kept under its name,
 * a transaction's statement runs on the transaction's own connection, and a failure is the QueryFailedError
 * TypeORM's `query()` would throw, with PostgreSQL's code.
 */
import { DataSource, QueryFailedError } from 'typeorm';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import { ensureDatabaseAndSchema, serviceDataSourceOptions, UNIQUE_VIOLATION } from './database';
import { prepared, preparedText, PREPARED_TEXTS_MAX, runPrepared } from './prepared';

const insert = prepared('prepared_spec_insert', 'INSERT INTO notes (id, body) VALUES ($1, $2) RETURNING id, body');
const count = prepared('prepared_spec_count', 'SELECT count(*)::int AS n FROM notes');
const known = prepared('prepared_spec_known', "SELECT name FROM pg_prepared_statements WHERE name LIKE 'prepared_spec_%' ORDER BY name");

describe('runPrepared', () => {
  jest.setTimeout(30_000);
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    db = await startTestDatabase('prepared');
    await ensureDatabaseAndSchema(db.url, 'prepared');
    // one connection: what one call prepared, the next call finds
    ds = await new DataSource(serviceDataSourceOptions({ url: db.url, schema: 'prepared', entities: [], migrations: [], poolSize: 1 })).initialize();
    await ds.query('CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)');
  });
  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  it('returns the rows, and the connection keeps the statement under its name for the next call', async () => {
    await expect(runPrepared(ds, insert, [1, 'one'])).resolves.toEqual([{ id: 1, body: 'one' }]);
    await expect(runPrepared(ds, insert, [2, 'two'])).resolves.toEqual([{ id: 2, body: 'two' }]);
    const names = await runPrepared<{ name: string }>(ds, known, []);
    expect(names.map((r) => r.name)).toEqual(['prepared_spec_insert', 'prepared_spec_known']);
  });

  it("runs inside a transaction on the transaction's connection: a rollback takes its row back", async () => {
    const before = (await runPrepared<{ n: number }>(ds, count, []))[0]!.n;
    await expect(
      ds.transaction(async (m) => {
        await runPrepared(m, insert, [10, 'ten']);
        expect((await runPrepared<{ n: number }>(m, count, []))[0]!.n).toBe(before + 1);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect((await runPrepared<{ n: number }>(ds, count, []))[0]!.n).toBe(before);
    await ds.transaction((m) => runPrepared(m, insert, [11, 'eleven']));
    expect((await runPrepared<{ n: number }>(ds.manager, count, []))[0]!.n).toBe(before + 1);
  });

  it("fails as TypeORM's query() does: a QueryFailedError with PostgreSQL's code", async () => {
    const failure = await runPrepared(ds, insert, [1, 'again']).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(QueryFailedError);
    expect((failure as { code?: string }).code).toBe(UNIQUE_VIOLATION);
    // the connection is still usable
    await expect(runPrepared(ds, insert, [3, 'three'])).resolves.toEqual([{ id: 3, body: 'three' }]);
  });

  it('refuses a second text under a name already in use, and accepts the same text again', () => {
    expect(() => prepared('prepared_spec_insert', 'SELECT 1')).toThrow(/already defined with another text/);
    expect(prepared('prepared_spec_insert', insert.text)).toEqual(insert);
  });
});

describe('preparedText', () => {
  it('names a text after its content: the same text, the same name; another text, another name', () => {
    const a = preparedText('SELECT 1 WHERE $1::int > 0');
    expect(a.name).toMatch(/^flexmig_[0-9a-f]{24}$/);
    expect(preparedText('SELECT 1 WHERE $1::int > 0')).toBe(a);
    expect(preparedText('SELECT 2 WHERE $1::int > 0').name).not.toBe(a.name);
  });

  it(`names at most ${PREPARED_TEXTS_MAX} texts; a text past that runs unnamed`, () => {
    for (let i = 0; i < PREPARED_TEXTS_MAX; i++) preparedText(`SELECT ${i} AS filler`);
    expect(preparedText('SELECT 1 AS past_the_cap')).toEqual({ name: '', text: 'SELECT 1 AS past_the_cap' });
  });
});
