import { createHash } from 'node:crypto';
import { DataSource, EntityManager, QueryFailedError } from 'typeorm';

/**
 * A statement that runs on the hot path: PostgreSQL parses it once per connection and, after a few runs,
 * plans it once (a generic plan), instead of parsing and planning it on every call. Measured on the saga's
 * transition (one statement per step): parse 0.50 ms, bind (planning) 0.68 ms and execute 0.68 ms of
 * server time per call as an unnamed statement; the parse and most of the planning were PostgreSQL's CPU
 * on every step of every migration (docs/scale.md).
 *
 * The name must be unique in the process and stand for this text only: a connection keeps what it
 * prepared under a name, and the pg driver refuses the same name with another text.
 */
export interface Prepared {
  readonly name: string;
  readonly text: string;
}

const names = new Map<string, string>();

export function prepared(name: string, text: string): Prepared {
  const known = names.get(name);
  if (known !== undefined && known !== text) throw new Error(`prepared statement ${name} is already defined with another text`);
  names.set(name, text);
  return { name, text };
}

/** How many texts `preparedText` names; past that, a text runs unnamed (parsed every time), as from `query()`. */
export const PREPARED_TEXTS_MAX = 256;
const byText = new Map<string, Prepared>();

/**
 * A statement built from a few parts (a filter given or not, a cursor or not: a handful of texts), prepared
 * under a name derived from its text. Only for text made of constants and placeholders: a value spliced
 * into the text would make a new statement per value. Past PREPARED_TEXTS_MAX texts, it names no more and the
 * statement runs unnamed.
 */
export function preparedText(text: string): Prepared {
  const known = byText.get(text);
  if (known) return known;
  if (byText.size >= PREPARED_TEXTS_MAX) return { name: '', text };
  const statement = { name: `flexmig_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`, text };
  byText.set(text, statement);
  return statement;
}

/** What runs a prepared statement: pg's pool (outside a transaction) or a transaction's connection. */
interface PgQueryable {
  query(config: { name?: string; text: string; values: unknown[] }): Promise<{ rows: unknown[] }>;
}

/**
 * Runs `statement` with `params` and returns its rows (a `RETURNING` list or a SELECT's; none otherwise).
 * `on`: the DataSource (a pooled connection, autocommit) or the EntityManager of a transaction (its own
 * connection). A failure is a TypeORM QueryFailedError, as from `query()`, with PostgreSQL's `code`.
 */
export async function runPrepared<T>(on: DataSource | EntityManager, statement: Prepared, params: unknown[]): Promise<T[]> {
  const client = await connectionOf(on);
  try {
    const result = await client.query(statement.name ? { name: statement.name, text: statement.text, values: params } : { text: statement.text, values: params });
    return result.rows as T[];
  } catch (e) {
    throw new QueryFailedError(statement.text, params, e as Error);
  }
}

async function connectionOf(on: DataSource | EntityManager): Promise<PgQueryable> {
  if (on instanceof DataSource) return (on.driver as unknown as { master: PgQueryable }).master;
  const runner = on.queryRunner;
  if (!runner) return (on.connection.driver as unknown as { master: PgQueryable }).master;
  // a transaction's runner holds its connection once connected (TypeORM connects it at BEGIN)
  const connection = (await runner.connect()) as PgQueryable;
  return connection;
}
