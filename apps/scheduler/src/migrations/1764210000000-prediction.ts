import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `prediction`: what POST /api/v1/migrations predicted before the start (docs/prediction.md), shown beside
 * the actual figures in the migration's result and its migration.completed event; `prediction_error`: why
 * none could be made (the migration goes ahead without one). Both NULL on older migrations.
 */
export class Prediction1764210000000 implements MigrationInterface {
  name = 'Prediction1764210000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ADD COLUMN prediction jsonb, ADD COLUMN prediction_error text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations DROP COLUMN prediction, DROP COLUMN prediction_error`);
  }
}
