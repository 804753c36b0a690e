import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `due_at`: when a migration's next action is due, persisted with its saga state, so that the engine's
 * reconcile pass finds what is due in PostgreSQL rather than relying on in-process timers. Indexed for the
 * pass (per lease owner, due first). Migrations in flight when this runs are due at once: the pass re-drives
 * them from their persisted state (as after a restart).
 */
export class DueAt1764190000000 implements MigrationInterface {
  name = 'DueAt1764190000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ADD COLUMN due_at timestamptz`);
    await q.query(`UPDATE migrations SET due_at = now() WHERE state IN ('created', 'running', 'compensating')`);
    await q.query(`CREATE INDEX migrations_due ON migrations (lease_owner, due_at) WHERE due_at IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX migrations_due`);
    await q.query(`ALTER TABLE migrations DROP COLUMN due_at`);
  }
}
