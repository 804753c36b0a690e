import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inventory reconciled with the agents (docs/reconciliation.md): which agent process owns a host, the
 * VM set its agent last reported (and the digest its heartbeats carry), and the disagreements found.
 */
export class Reconciliation1764200000000 implements MigrationInterface {
  name = 'Reconciliation1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE hosts
      ADD COLUMN agent_instance_id text,
      ADD COLUMN vm_digest text,
      ADD COLUMN reported_vms jsonb,
      ADD COLUMN reported_digest text,
      ADD COLUMN reported_at timestamptz`);
    await q.query(`CREATE TABLE reconciliation_findings (
      kind text NOT NULL CHECK (kind IN ('orphaned', 'missing', 'split-brain')),
      vm_id uuid NOT NULL,
      host_id text NOT NULL,
      other_host_ids jsonb NOT NULL DEFAULT '[]',
      agent_state text,
      recorded_host_id text,
      recorded_state text,
      paused_host_ids jsonb NOT NULL DEFAULT '[]',
      detail text NOT NULL,
      first_seen_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (kind, vm_id, host_id))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE reconciliation_findings');
    await q.query(`ALTER TABLE hosts DROP COLUMN agent_instance_id, DROP COLUMN vm_digest, DROP COLUMN reported_vms, DROP COLUMN reported_digest, DROP COLUMN reported_at`);
  }
}
