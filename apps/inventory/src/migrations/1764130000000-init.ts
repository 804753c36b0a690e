import { MigrationInterface, QueryRunner } from 'typeorm';

export class Init1764130000000 implements MigrationInterface {
  name = 'Init1764130000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE clusters (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL UNIQUE,
      imc_mode text,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE hosts (
      id text PRIMARY KEY,
      cluster_id uuid NOT NULL REFERENCES clusters(id),
      hostname text NOT NULL,
      cpu_vendor text NOT NULL,
      cpu_model_name text NOT NULL,
      cpu_features jsonb NOT NULL,
      max_imc_mode text,
      memory_mib int NOT NULL CHECK (memory_mib > 0),
      vcpus int NOT NULL CHECK (vcpus > 0),
      driver text NOT NULL,
      migration_address text NOT NULL,
      state text NOT NULL CHECK (state IN ('up', 'down')),
      maintenance boolean NOT NULL DEFAULT false,
      last_heartbeat_at timestamptz NOT NULL,
      registered_at timestamptz NOT NULL)`);
    await q.query(`CREATE INDEX hosts_cluster_id ON hosts (cluster_id)`);
    await q.query(`CREATE TABLE vms (
      id uuid PRIMARY KEY,
      name text NOT NULL,
      cluster_id uuid NOT NULL REFERENCES clusters(id),
      host_id text NOT NULL REFERENCES hosts(id),
      memory_mib int NOT NULL CHECK (memory_mib > 0),
      vcpus int NOT NULL CHECK (vcpus > 0),
      cpu_baseline text NOT NULL,
      state text NOT NULL CHECK (state IN ('starting', 'running', 'stopped', 'error')),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE INDEX vms_host_id ON vms (host_id)`);
    await q.query(`CREATE INDEX vms_cluster_id ON vms (cluster_id)`);
    await q.query(`CREATE TABLE reservations (
      migration_id uuid PRIMARY KEY,
      vm_id uuid NOT NULL REFERENCES vms(id),
      host_id text NOT NULL REFERENCES hosts(id),
      memory_mib int NOT NULL,
      vcpus int NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE INDEX reservations_host_id ON reservations (host_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE reservations');
    await q.query('DROP TABLE vms');
    await q.query('DROP TABLE hosts');
    await q.query('DROP TABLE clusters');
  }
}
