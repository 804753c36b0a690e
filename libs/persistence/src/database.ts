import { Client } from 'pg';
import { DataSource, DataSourceOptions } from 'typeorm';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { serviceTypeParsers } from './timestamps';

// PostgreSQL error codes that mean "someone else created it first" during concurrent first starts.
const DUPLICATE_DATABASE = '42P04';
const DUPLICATE_SCHEMA = '42P06';
/** PostgreSQL's unique_violation: a row with the same key exists (an insert lost a race, or a duplicate request). */
export const UNIQUE_VIOLATION = '23505';

/** True when `e` is PostgreSQL's unique_violation (whatever driver layer wrapped it keeps `code`). */
export function isUniqueViolation(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === UNIQUE_VIOLATION;
}

function describeTarget(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || 5432}`;
}

export function databaseNameOf(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  if (!name) throw new FlexmigError(ErrorCode.ValidationFailed, `DATABASE_URL ${url} names no database`);
  return name;
}

/** A TLS failure (the server's certificate, its name, the handshake) rather than a server that is not there. */
const tlsFailure = /certificate|self[- ]signed|altnames|SSL|TLS|handshake/i;

export function unreachable(url: string, e: unknown): FlexmigError {
  const message = (e as Error)?.message ?? String(e);
  const what = tlsFailure.test(message)
    ? 'The TLS connection failed: with sslmode=verify-full the server\'s certificate must chain to the CA of ' +
      'sslrootcert=<file> in DATABASE_URL (else the system\'s CAs) and name the host of the URL.'
    : 'Start it (Debian: `pg_ctlcluster 15 main start`, or `apt-get install postgresql`), or set DATABASE_URL to a server that runs.';
  return new FlexmigError(ErrorCode.Unavailable, `cannot reach PostgreSQL at ${describeTarget(url)} (${message}). ${what}`, { target: describeTarget(url) });
}

/**
 * A service creates its database and its own schema on first start when they are missing
 * (DESIGN.md: each service owns its tables, in its own schema). Safe when several services start at once.
 */
export async function ensureDatabaseAndSchema(url: string, schema: string): Promise<void> {
  const database = databaseNameOf(url);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const adminClient = new Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  try {
    await adminClient.connect();
  } catch (e) {
    throw unreachable(url, e);
  }
  try {
    const exists = await adminClient.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) {
      await adminClient.query(`CREATE DATABASE ${quoteIdent(database)}`).catch((e) => {
        if (e.code !== DUPLICATE_DATABASE && !isUniqueViolation(e)) throw e;
      });
    }
  } finally {
    await adminClient.end();
  }
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect().catch((e: unknown) => {
    throw unreachable(url, e);
  });
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`).catch((e) => {
      if (e.code !== DUPLICATE_SCHEMA && !isUniqueViolation(e)) throw e;
    });
  } finally {
    await client.end();
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

type PostgresOptions = Extract<DataSourceOptions, { type: 'postgres' }>;

export interface ServiceDataSourceOptions {
  url: string;
  schema: string;
  // TypeORM's own types for these lists (entity and migration classes, globs), taken from its options
  entities: NonNullable<PostgresOptions['entities']>;
  migrations: NonNullable<PostgresOptions['migrations']>;
  poolSize?: number;
}

/**
 * TypeORM options: never `synchronize` (the schema is what the migrations say). The migrations are not run
 * by `initialize()` (TypeORM takes no lock, and two replicas starting together would both run them):
 * initializeServiceDataSource runs them once, under a lock.
 */
export function serviceDataSourceOptions(o: ServiceDataSourceOptions): DataSourceOptions {
  return {
    type: 'postgres',
    url: o.url,
    schema: o.schema,
    entities: o.entities,
    migrations: o.migrations,
    migrationsRun: false,
    migrationsTableName: 'typeorm_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    // pg_stat_activity names each connection's service (an operator looking at a busy PostgreSQL shared by
    // the services; bench/scale counts inventory's own backends for the heartbeats' cost)
    applicationName: applicationNameOf(o.schema),
    // raw SQL in migrations and queries resolves to the service's own schema first
    // timestamps read without the driver's regular expressions (timestamps.ts)
    extra: { max: o.poolSize ?? 10, connectionTimeoutMillis: 5_000, options: `-c search_path=${o.schema}`, types: serviceTypeParsers },
    // query errors are mapped to typed errors by the services; unexpected ones are logged at the edge
    logging: ['warn', 'migration'],
  };
}

/** The `application_name` of a service's connections: `flexmig-` and its schema (`flexmig-inventory`). */
export const applicationNameOf = (schema: string): string => `flexmig-${schema}`;

/** The session advisory lock (a key of `hashtext`) that lets one process at a time migrate a schema. */
export const migrationLockName = (schema: string) => `flexmig:migrations:${schema}`;

/**
 * Opens a service's DataSource and brings its schema up to date, once across replicas: the pending
 * migrations run under a PostgreSQL session advisory lock per schema, so a second replica starting at the
 * same time waits, then finds nothing left to run. The lock goes with the session, so a replica killed
 * mid-migration releases it (and that migration's transaction rolls back).
 */
export async function initializeServiceDataSource(options: DataSourceOptions): Promise<DataSource> {
  const schema = (options as PostgresOptions).schema ?? 'public';
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  const lock = dataSource.createQueryRunner();
  try {
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock(hashtext($1))', [migrationLockName(schema)]);
    try {
      await dataSource.runMigrations({ transaction: 'each' });
    } finally {
      await lock.query('SELECT pg_advisory_unlock(hashtext($1))', [migrationLockName(schema)]);
    }
  } catch (e) {
    await dataSource.destroy().catch(() => undefined);
    throw e;
  } finally {
    await lock.release();
  }
  return dataSource;
}

/**
 * Runs an `UPDATE/DELETE … RETURNING` and gives back its rows. (TypeORM's postgres driver answers such a
 * statement with `[rows, affectedCount]` but a SELECT with the rows alone.)
 */
export async function queryReturning<T>(runner: { query(sql: string, params?: unknown[]): Promise<unknown> }, sql: string, params: unknown[] = []): Promise<T[]> {
  const result = await runner.query(sql, params);
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') return result[0] as T[];
  return result as T[];
}
