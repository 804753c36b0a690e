/**
 * Schema migrations run once across replicas: two processes starting together on an empty schema (two
 * DataSources here, as two replicas would open them) both come up, and each migration ran exactly once,
 * although the migration below would fail if it ran twice and takes long enough for the two to overlap.
 */
import { DataSource, MigrationInterface, QueryRunner } from 'typeorm';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import { applicationNameOf, ensureDatabaseAndSchema, initializeServiceDataSource, migrationLockName, serviceDataSourceOptions } from './database';

/** Not idempotent on purpose (CREATE TABLE without IF NOT EXISTS), and slow (pg_sleep): a second run at the same time would fail. */
class CreateThings1700000000000 implements MigrationInterface {
  name = 'CreateThings1700000000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query('SELECT pg_sleep(0.5)');
    await q.query('CREATE TABLE things (id int PRIMARY KEY)');
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE things');
  }
}

describe('initializeServiceDataSource: migrations once across replicas, connections named after their service', () => {
  jest.setTimeout(30_000);
  let db: TestDatabase;
  const opened: DataSource[] = [];
  beforeAll(async () => {
    db = await startTestDatabase('migration-lock');
    await ensureDatabaseAndSchema(db.url, 'locked');
  });
  afterAll(async () => {
    for (const ds of opened) await ds.destroy();
    await db?.stop();
  });

  it('two replicas starting together both come up, and the migration ran once', async () => {
    const options = serviceDataSourceOptions({ url: db.url, schema: 'locked', entities: [], migrations: [CreateThings1700000000000] });
    const [a, b] = await Promise.all([initializeServiceDataSource(options), initializeServiceDataSource(options)]);
    opened.push(a, b);
    expect(await a.query('SELECT name FROM locked.typeorm_migrations')).toEqual([{ name: 'CreateThings1700000000000' }]);
    expect(await b.query('SELECT count(*)::int AS n FROM locked.things')).toEqual([{ n: 0 }]);
    // the lock is released once both are up: another session takes it at once
    const other = a.createQueryRunner();
    try {
      expect(await other.query('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [migrationLockName('locked')])).toEqual([{ ok: true }]);
      await other.query('SELECT pg_advisory_unlock(hashtext($1))', [migrationLockName('locked')]);
    } finally {
      await other.release();
    }
  });

  it('names its connections after the service, so pg_stat_activity tells the services apart', async () => {
    const ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'locked', entities: [], migrations: [] }));
    opened.push(ds);
    expect(await ds.query("SELECT current_setting('application_name') AS name")).toEqual([{ name: 'flexmig-locked' }]);
    const [{ n }] = await ds.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND pid = pg_backend_pid()', [applicationNameOf('locked')]);
    expect(n).toBe(1);
  });
});
