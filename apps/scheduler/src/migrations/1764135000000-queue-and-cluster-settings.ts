import { MigrationInterface, QueryRunner } from 'typeorm';

export class QueueAndClusterSettings1764135000000 implements MigrationInterface {
  name = 'QueueAndClusterSettings1764135000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ADD COLUMN placement jsonb`);
    // the admission queue is read in arrival order
    await q.query(`CREATE INDEX migrations_queued ON migrations (created_at) WHERE state = 'queued'`);
    await q.query(`CREATE TABLE cluster_settings (
      cluster_id uuid PRIMARY KEY,
      limits jsonb NOT NULL DEFAULT '{}',
      policy jsonb NOT NULL DEFAULT '{}',
      updated_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE cluster_settings');
    await q.query('DROP INDEX migrations_queued');
    await q.query('ALTER TABLE migrations DROP COLUMN placement');
  }
}
