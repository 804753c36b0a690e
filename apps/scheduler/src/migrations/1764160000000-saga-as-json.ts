import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The saga state is rewritten whole at every step and never queried inside: `json` stores the text as
 * is, where `jsonb` parses and re-encodes it on every write. A lower fillfactor leaves room in each page
 * so those updates can stay on the page (HOT), without new index entries.
 */
export class SagaAsJson1764160000000 implements MigrationInterface {
  name = 'SagaAsJson1764160000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ALTER COLUMN saga TYPE json USING saga::json`);
    await q.query(`ALTER TABLE migrations SET (fillfactor = 70)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations RESET (fillfactor)`);
    await q.query(`ALTER TABLE migrations ALTER COLUMN saga TYPE jsonb USING saga::jsonb`);
  }
}
