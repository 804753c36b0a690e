import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What a completed migration measured of its two hosts (prediction/measured.ts), stored when it completes:
 * a prediction then reads these few numbers of the migrations it learns from, not their whole sagas (about
 * 3.5 KB of JSON each, up to 30 per prediction). Rows completed before it keep NULL and are read as before.
 * JSON null: the migration measured nothing (its first pass sent too little).
 */
export class Measured1764250000000 implements MigrationInterface {
  name = 'Measured1764250000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE migrations ADD COLUMN measured jsonb');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE migrations DROP COLUMN measured');
  }
}
