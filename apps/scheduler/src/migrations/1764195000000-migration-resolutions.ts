import { MigrationInterface, QueryRunner } from 'typeorm';

/** How operators closed `failed-needs-attention` migrations (POST /api/v1/migrations/{id}/resolve): one row each. */
export class MigrationResolutions1764195000000 implements MigrationInterface {
  name = 'MigrationResolutions1764195000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE migration_resolutions (
      migration_id uuid PRIMARY KEY REFERENCES migrations(id),
      runs_on text NOT NULL CHECK (runs_on IN ('source', 'target')),
      host_id text NOT NULL,
      decided_by text NOT NULL CHECK (decided_by IN ('agents', 'operator')),
      resolved_by text NOT NULL,
      resolved_at timestamptz NOT NULL,
      reason text NOT NULL,
      evidence jsonb NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE migration_resolutions`);
  }
}
