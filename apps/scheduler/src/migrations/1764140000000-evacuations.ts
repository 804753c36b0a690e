import { MigrationInterface, QueryRunner } from 'typeorm';

export class Evacuations1764140000000 implements MigrationInterface {
  name = 'Evacuations1764140000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE evacuations (
      id uuid PRIMARY KEY,
      host_id text NOT NULL,
      cluster_id uuid NOT NULL,
      state text NOT NULL,
      items jsonb NOT NULL DEFAULT '[]',
      requested_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz)`);
    // one evacuation at a time per host: of two requests at the same instant exactly one is accepted
    await q.query(`CREATE UNIQUE INDEX evacuations_one_running_per_host ON evacuations (host_id) WHERE state = 'running'`);
    await q.query(`CREATE INDEX evacuations_created_at ON evacuations (created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE evacuations');
  }
}
