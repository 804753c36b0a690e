import { type EntityManager, type ObjectLiteral, type SelectQueryBuilder } from 'typeorm';
import { ErrorCode, FlexmigError, type PageQuery } from '@flexmig/contracts';

/** The cursor of a page: the id of its last item, made opaque (and versioned, to change its form later). */
export const encodeCursor = (id: string): string => Buffer.from(`v1:${id}`).toString('base64url');

export function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString();
  if (!text.startsWith('v1:') || text.length < 4) throw cursorNotOurs(cursor);
  return text.slice(3);
}

/** The error for a cursor no page of this list gave (decodable, but not of the list's form or type). */
export const cursorNotOurs = (cursor: string) =>
  new FlexmigError(ErrorCode.ValidationFailed, 'the cursor is not one this list gave: pass the nextCursor of the previous page as it was, or leave it out to start again', { cursor });

/** SQLSTATE invalid_text_representation: a cursor whose id is not one of the column's type (a uuid column). */
const INVALID_TEXT_REPRESENTATION = '22P02';

const cursorGone = (cursor: string) =>
  new FlexmigError(ErrorCode.ValidationFailed, 'the cursor names an item that is no longer listed: list again from the start (without cursor)', { cursor });

/**
 * One page of a keyset-paginated list: the rows of `qb` (its filters set, no order) after the cursor's row,
 * in the order of `keys` (columns of the query's alias, the last one unique: `['created_at', 'id']` or
 * `['id']`), at most `page.limit`, and the cursor of the next page. Stable under inserts and deletes
 * elsewhere: a page starts after the row the cursor names, not at an offset. A cursor whose row is gone
 * is refused (list again from the start).
 *
 * One round trip per page: the cursor's row is read inside the page's query, where a missing row compares
 * as NULL and yields no rows. Only a page that comes back empty asks whether its cursor's row still
 * exists. A cursor that is no id of the column's type is VALIDATION_FAILED; any other database error
 * (PostgreSQL down) is thrown as it is, for the edges to answer UNAVAILABLE, never as "start again".
 */
export async function keysetPage<E extends ObjectLiteral>(
  qb: SelectQueryBuilder<E>,
  o: { keys: string[]; idKey: keyof E & string; direction: 'ASC' | 'DESC'; page: PageQuery },
): Promise<{ rows: E[]; nextCursor: string | null }> {
  const alias = qb.alias;
  const table = qb.expressionMap.mainAlias!.metadata.tablePath;
  const idColumn = qb.expressionMap.mainAlias!.metadata.findColumnWithPropertyName(o.idKey)!.databaseName;
  const cols = o.keys.map((k) => `${alias}.${k}`).join(', ');
  const cursorId = o.page.cursor ? decodeCursor(o.page.cursor) : undefined;
  if (cursorId !== undefined) {
    const op = o.direction === 'ASC' ? '>' : '<';
    qb.andWhere(`(${cols}) ${op} (SELECT ${o.keys.map((k) => `c.${k}`).join(', ')} FROM ${table} c WHERE c.${idColumn} = :cursorId)`, { cursorId });
  }
  for (const [i, k] of o.keys.entries()) (i === 0 ? qb.orderBy : qb.addOrderBy).call(qb, `${alias}.${k}`, o.direction);
  const rows = await qb.limit(o.page.limit + 1).getMany().catch((e: unknown) => {
    throw isInvalidText(e) ? cursorNotOurs(o.page.cursor!) : e;
  });
  return pageOf(rows, o.page, (r) => String(r[o.idKey]), cursorId === undefined ? undefined : () => cursorRowExists(qb.connection.manager, table, idColumn, cursorId));
}

/**
 * `keysetPage` for a hand-written statement (one that joins what TypeORM's builder cannot, in one round
 * trip). It writes the statement's condition, order and limit over `alias` (a table or a CTE of `table`'s
 * rows): the filters given (column = value, those undefined left out), the rows after the cursor's row
 * (read inside the statement, as `keysetPage` does), ascending by `keys` (the last one unique), one more
 * than the limit to know whether a next page exists. `select` runs it: `SELECT … FROM <table> <alias>
 * WHERE ${condition}`, with `params`. The same cursor rules and errors as `keysetPage`.
 */
export async function keysetPageSql<R>(
  m: EntityManager,
  o: {
    table: string;
    alias: string;
    keys: string[];
    idColumn: string;
    filters?: Record<string, string | undefined>;
    page: PageQuery;
    idOf: (row: R) => string;
    select: (condition: string, params: unknown[]) => Promise<R[]>;
  },
): Promise<{ rows: R[]; nextCursor: string | null }> {
  const cursorId = o.page.cursor ? decodeCursor(o.page.cursor) : null;
  const params: unknown[] = [o.page.limit + 1];
  const where = ['true'];
  for (const [column, value] of Object.entries(o.filters ?? {})) if (value !== undefined) where.push(`${o.alias}.${column} = $${params.push(value)}`);
  if (cursorId !== null) {
    const keys = (prefix: string) => o.keys.map((k) => `${prefix}.${k}`).join(', ');
    where.push(`(${keys(o.alias)}) > (SELECT ${keys('c')} FROM ${o.table} c WHERE c.${o.idColumn} = $${params.push(cursorId)})`);
  }
  const condition = `${where.join(' AND ')} ORDER BY ${o.keys.map((k) => `${o.alias}.${k}`).join(', ')} LIMIT $1`;
  const rows = await o.select(condition, params).catch((e: unknown) => {
    throw isInvalidText(e) ? cursorNotOurs(o.page.cursor!) : e;
  });
  return pageOf(rows, o.page, o.idOf, cursorId === null ? undefined : () => cursorRowExists(m, o.table, o.idColumn, cursorId));
}

async function pageOf<R>(rows: R[], page: PageQuery, idOf: (row: R) => string, cursorExists?: () => Promise<boolean>): Promise<{ rows: R[]; nextCursor: string | null }> {
  // empty: the end of the list, or a cursor whose row is gone (nextCursor is only given when more rows follow)
  if (cursorExists && rows.length === 0 && !(await cursorExists())) throw cursorGone(page.cursor!);
  const more = rows.length > page.limit;
  const pageRows = more ? rows.slice(0, page.limit) : rows;
  return { rows: pageRows, nextCursor: more ? encodeCursor(idOf(pageRows.at(-1)!)) : null };
}

const cursorRowExists = async (m: EntityManager, table: string, idColumn: string, id: string): Promise<boolean> =>
  ((await m.query(`SELECT 1 FROM ${table} WHERE ${idColumn} = $1`, [id])) as unknown[]).length > 0;

const isInvalidText = (e: unknown): boolean => {
  const err = e as { code?: unknown; driverError?: { code?: unknown } } | null;
  return err?.code === INVALID_TEXT_REPRESENTATION || err?.driverError?.code === INVALID_TEXT_REPRESENTATION;
};
