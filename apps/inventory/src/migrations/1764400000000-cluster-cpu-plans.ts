import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The cached CPU plan of each cluster (docs/scale.md): the mode its hosts share, which a VM created without
 * a baseline in a cluster without an IMC mode gets. `generation` goes up whenever a host joins the cluster
 * or comes back with another CPU; the plan is current while `planned_generation` equals it.
 */
export class ClusterCpuPlans1764400000000 implements MigrationInterface {
  name = 'ClusterCpuPlans1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE cluster_cpu_plans (
      cluster_id uuid PRIMARY KEY REFERENCES clusters(id) ON DELETE CASCADE,
      generation bigint NOT NULL DEFAULT 1,
      planned_generation bigint,
      mode text,
      reason text)`);
    await q.query('INSERT INTO cluster_cpu_plans (cluster_id) SELECT id FROM clusters');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE cluster_cpu_plans');
  }
}
