import { MigrationInterface, QueryRunner } from 'typeorm';

export class Init1764130000000 implements MigrationInterface {
  name = 'Init1764130000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE migrations (
      id uuid PRIMARY KEY,
      vm_id uuid NOT NULL,
      cluster_id uuid NOT NULL,
      source_host_id text NOT NULL,
      target_host_id text NOT NULL,
      state text NOT NULL,
      saga jsonb NOT NULL,
      vm jsonb NOT NULL,
      policy jsonb NOT NULL,
      target_address text NOT NULL,
      version int NOT NULL DEFAULT 1,
      lease_owner text,
      lease_until timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz)`);
    // one active migration per VM: of two requests at the same instant exactly one is accepted
    await q.query(`CREATE UNIQUE INDEX migrations_one_active_per_vm ON migrations (vm_id)
      WHERE state NOT IN ('completed', 'rolled-back', 'cancelled', 'failed-needs-attention')`);
    await q.query(`CREATE INDEX migrations_vm_id ON migrations (vm_id, created_at)`);
    await q.query(`CREATE INDEX migrations_active_lease ON migrations (lease_until)
      WHERE state NOT IN ('completed', 'rolled-back', 'cancelled', 'failed-needs-attention')`);
    await q.query(`CREATE TABLE outbox (
      seq bigserial PRIMARY KEY,
      event_id text NOT NULL UNIQUE,
      type text NOT NULL,
      subject text NOT NULL,
      data jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE outbox');
    await q.query('DROP TABLE migrations');
  }
}
