import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * IMC off (host passthrough): a VM records the features of the host it started on, so that it only
 * moves to hosts with the same set. NULL for VMs with a named baseline (the baseline says it all).
 */
export class VmCpuFeatures1764150000000 implements MigrationInterface {
  name = 'VmCpuFeatures1764150000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms ADD COLUMN cpu_features jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms DROP COLUMN cpu_features`);
  }
}
