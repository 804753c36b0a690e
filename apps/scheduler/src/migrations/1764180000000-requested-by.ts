import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Who asked for a migration or an evacuation: the `sub` of the caller's bearer token. Nullable: rows
 * from before tokens were required have no one to name.
 */
export class RequestedBy1764180000000 implements MigrationInterface {
  name = 'RequestedBy1764180000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ADD COLUMN requested_by text`);
    await q.query(`ALTER TABLE evacuations ADD COLUMN requested_by text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE evacuations DROP COLUMN requested_by`);
    await q.query(`ALTER TABLE migrations DROP COLUMN requested_by`);
  }
}
