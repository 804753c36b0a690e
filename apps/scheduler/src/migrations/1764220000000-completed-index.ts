import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The newest completed migrations of a cluster, and of a pair of hosts: where a prediction learns the link
 * and the control plane's costs (apps/scheduler/src/prediction). Without these, each prediction sorted every
 * completed migration.
 */
export class CompletedIndex1764220000000 implements MigrationInterface {
  name = 'CompletedIndex1764220000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX migrations_completed_cluster ON migrations (cluster_id, finished_at DESC) WHERE state = 'completed'`);
    await q.query(`CREATE INDEX migrations_completed_pair ON migrations (source_host_id, target_host_id, finished_at DESC) WHERE state = 'completed'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX migrations_completed_pair`);
    await q.query(`DROP INDEX migrations_completed_cluster`);
  }
}
