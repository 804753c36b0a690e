import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The migration list's order, newest first by (created_at, id), as an index: without it every page of
 * `GET /api/v1/migrations` read and sorted the whole table, a cost that grows with every migration ever
 * run (docs/scale.md, "List pages"). Read backwards for the newest first.
 */
export class ListOrder1764240000000 implements MigrationInterface {
  name = 'ListOrder1764240000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX migrations_by_age ON migrations (created_at, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX migrations_by_age');
  }
}
