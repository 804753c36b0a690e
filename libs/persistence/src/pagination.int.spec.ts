/**
 * keysetPage and keysetPageSql (its form for a hand-written statement) against real PostgreSQL: pages in order through a cursor, a cursor whose row is gone or that
 * is no uuid is VALIDATION_FAILED, and a database failure during a page is thrown as the failure it is
 * (UNAVAILABLE at the edges), never turned into "list again from the start".
 */
import { randomUUID } from 'node:crypto';
import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import { ErrorCode, transientFailure } from '@flexmig/contracts';
import { startTestDatabase, TcpProxy, TestDatabase } from '@flexmig/testing';
import { ensureDatabaseAndSchema, serviceDataSourceOptions } from './database';
import { encodeCursor, keysetPage, keysetPageSql } from './pagination';

@Entity({ name: 'things' })
class Thing {
  @PrimaryColumn('uuid') id: string;
  @Column('int') n: number;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
}

describe('keysetPage', () => {
  jest.setTimeout(30_000);
  let db: TestDatabase;
  let ds: DataSource;
  const ids: string[] = [];
  const builderPage = (cursor?: string, limit = 3) => keysetPage(ds.getRepository(Thing).createQueryBuilder('t'), { keys: ['created_at', 'id'], idKey: 'id', direction: 'ASC', page: { limit, ...(cursor ? { cursor } : {}) } });
  const sqlPage = (cursor?: string, limit = 3) =>
    keysetPageSql<{ id: string; n: number }>(ds.manager, {
      table: 'things',
      alias: 't',
      keys: ['created_at', 'id'],
      idColumn: 'id',
      filters: { n: undefined },
      page: { limit, ...(cursor ? { cursor } : {}) },
      idOf: (r) => r.id,
      select: (condition, params) => ds.query(`SELECT id, n FROM things t WHERE ${condition}`, params),
    });

  beforeAll(async () => {
    db = await startTestDatabase('pagination');
    await ensureDatabaseAndSchema(db.url, 'paged');
    ds = await new DataSource(serviceDataSourceOptions({ url: db.url, schema: 'paged', entities: [Thing], migrations: [], poolSize: 2 })).initialize();
    await ds.query('CREATE TABLE things (id uuid PRIMARY KEY, n int NOT NULL, created_at timestamptz NOT NULL)');
    for (let n = 0; n < 7; n++) {
      const id = randomUUID();
      ids.push(id);
      await ds.query(`INSERT INTO things VALUES ($1, $2::int, now() + make_interval(secs => $3::int))`, [id, n, n]);
    }
  });
  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  describe.each([
    ['keysetPage', builderPage],
    ['keysetPageSql', sqlPage],
  ])('%s', (_name, page) => {
    it('given three pages, then each starts after the previous one and the last has no next cursor', async () => {
      const seen: number[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const p = await page(cursor);
        seen.push(...p.rows.map((r) => r.n));
        cursor = p.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(pages).toBe(3);
    });

    it('given a cursor whose row was deleted, then VALIDATION_FAILED says to list again from the start', async () => {
      const gone = randomUUID();
      await ds.query(`INSERT INTO things VALUES ($1, 99, now() + interval '1 hour')`, [gone]);
      await ds.query('DELETE FROM things WHERE id = $1', [gone]);
      await expect(page(encodeCursor(gone))).rejects.toMatchObject({ code: ErrorCode.ValidationFailed, message: expect.stringMatching(/list again from the start/) });
    });

    it('given a cursor that names no uuid, then VALIDATION_FAILED (PostgreSQL 22P02), not a server error', async () => {
      await expect(page(encodeCursor('not-a-uuid'))).rejects.toMatchObject({ code: ErrorCode.ValidationFailed, message: expect.stringMatching(/not one this list gave/) });
    });

  });

  it('given PostgreSQL goes away, then a page with a cursor fails as UNAVAILABLE, not as a refused cursor', async () => {
    // the service's connections pass through a proxy; stopping it drops them and refuses new ones, as a stopped server does
    const proxy = await new TcpProxy(Number(new URL(db.url).port || 5432), new URL(db.url).hostname).start();
    const viaProxy = new URL(db.url);
    viaProxy.host = proxy.url;
    const far = await new DataSource(serviceDataSourceOptions({ url: viaProxy.toString(), schema: 'paged', entities: [Thing], migrations: [], poolSize: 1 })).initialize();
    try {
      const first = await keysetPage(far.getRepository(Thing).createQueryBuilder('t'), { keys: ['created_at', 'id'], idKey: 'id', direction: 'ASC', page: { limit: 3 } });
      await proxy.stop();
      const e = await keysetPage(far.getRepository(Thing).createQueryBuilder('t'), { keys: ['created_at', 'id'], idKey: 'id', direction: 'ASC', page: { limit: 3, cursor: first.nextCursor! } }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeDefined();
      expect(e).not.toMatchObject({ code: ErrorCode.ValidationFailed });
      expect(transientFailure(e)).toMatchObject({ code: ErrorCode.Unavailable });
    } finally {
      await far.destroy().catch(() => undefined);
      await proxy.stop();
    }
  });
});
