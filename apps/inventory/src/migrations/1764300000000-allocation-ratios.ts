import { MigrationInterface, QueryRunner } from 'typeorm';

/** Overcommit per cluster: the allocation ratios of its hosts' vCPUs and memory (Nova's defaults: 4.0, 1.0 here). */
export class AllocationRatios1764300000000 implements MigrationInterface {
  name = 'AllocationRatios1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE clusters
      ADD COLUMN cpu_allocation_ratio double precision NOT NULL DEFAULT 4 CHECK (cpu_allocation_ratio > 0 AND cpu_allocation_ratio <= 64),
      ADD COLUMN memory_allocation_ratio double precision NOT NULL DEFAULT 1 CHECK (memory_allocation_ratio > 0 AND memory_allocation_ratio <= 8)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE clusters DROP COLUMN cpu_allocation_ratio, DROP COLUMN memory_allocation_ratio');
  }
}
