import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What a page of a large list needs, so that it costs the same at 10,000 VMs as at 500 (docs/scale.md):
 *
 * - Each host's CPU feature list digest, kept by PostgreSQL (a stored generated column). The lists that
 *   read many hosts (a page of hosts, placement's list) carry each feature list once and name it by this
 *   digest; computing it on every read (`md5(cpu_features::text)`, the jsonb printed first) was about 8 ms
 *   of PostgreSQL's CPU per 1,000 hosts.
 * - The lists' orders as indexes: VMs by (created_at, id), alone or within a cluster or a host; hosts by
 *   id within a cluster. Without them every page of VMs read and sorted the whole table (2 to 3 ms at
 *   10,000 VMs, growing with it). The composite indexes replace the single-column ones, which are their
 *   prefixes.
 */
export class ListPages1764500000000 implements MigrationInterface {
  name = 'ListPages1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE hosts ADD COLUMN cpu_feature_set text GENERATED ALWAYS AS (md5(cpu_features::text)) STORED');
    await q.query('CREATE INDEX vms_by_age ON vms (created_at, id)');
    await q.query('CREATE INDEX vms_cluster_by_age ON vms (cluster_id, created_at, id)');
    await q.query('CREATE INDEX vms_host_by_age ON vms (host_id, created_at, id)');
    await q.query('DROP INDEX vms_cluster_id');
    await q.query('DROP INDEX vms_host_id');
    await q.query('CREATE INDEX hosts_cluster_by_id ON hosts (cluster_id, id)');
    await q.query('DROP INDEX hosts_cluster_id');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('CREATE INDEX hosts_cluster_id ON hosts (cluster_id)');
    await q.query('DROP INDEX hosts_cluster_by_id');
    await q.query('CREATE INDEX vms_host_id ON vms (host_id)');
    await q.query('CREATE INDEX vms_cluster_id ON vms (cluster_id)');
    await q.query('DROP INDEX vms_host_by_age');
    await q.query('DROP INDEX vms_cluster_by_age');
    await q.query('DROP INDEX vms_by_age');
    await q.query('ALTER TABLE hosts DROP COLUMN cpu_feature_set');
  }
}
