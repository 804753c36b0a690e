import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { HostCpu } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { CpuCompatClient } from '../cpu/cpu-compat.client';

/** Every VM creation without a baseline reads its cluster's plan (prepared). */
const CLUSTER_PLAN = prepared('inventory_cluster_plan', 'SELECT generation, planned_generation, mode, reason FROM cluster_cpu_plans WHERE cluster_id = $1');

/**
 * One host of each distinct CPU of a cluster (vendor and feature list, by its digest), the lowest id of each:
 * a plan's mode and reason depend on which CPUs the cluster has, not on how many hosts have each. A stale
 * plan of 1,000 hosts of three CPUs reads and sends three feature lists, not 1,000 (about 1 MB); during a
 * fleet's registration every VM creation after a registration made one (docs/scale.md).
 */
const ONE_HOST_PER_CPU = prepared(
  'inventory_cluster_plan_cpus',
  'SELECT DISTINCT ON (cpu_vendor, cpu_feature_set) id, cpu_vendor, cpu_features FROM hosts WHERE cluster_id = $1 ORDER BY cpu_vendor, cpu_feature_set, id',
);

/** A cluster's row of `cluster_cpu_plans` as stored: current while `planned_generation` is `generation`. */
export interface StoredPlan {
  generation: string;
  planned_generation: string | null;
  mode: string | null;
  reason: string | null;
}

/** The part of a cluster's CPU plan that VM creation needs: the mode every host passes, or why there is none. */
export interface CachedPlan {
  mode: string | null;
  reason: string;
}

/**
 * The CPU plan of a cluster's hosts, kept in `cluster_cpu_plans` so that creating a VM does not send every
 * host of the cluster to cpu-compat (issue 11: 7.5 ms of cpu-compat CPU and 26 ms of inventory CPU per VM
 * at 1,000 hosts). A registration that adds a host or changes a host's CPU bumps the cluster's generation
 * (`invalidate`, right after the registration commits); a plan counts only while it was made at the current
 * generation. A plan that read the hosts before the new host committed is stored under the generation
 * before the bump, so the bump makes it stale; one that read them after either saw the host or fails to
 * store. (Should inventory die between the commit and the bump, the plan stays stale until the cluster's
 * next host change: docs/scale.md.)
 * The table is shared by every inventory replica, so a replica never serves another's stale plan.
 */
@Injectable()
export class ClusterCpuPlans {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly cpu: CpuCompatClient,
  ) {}

  /**
   * Called after a registration that changed the cluster's set of host CPUs has committed, in a statement
   * of its own (not in the registration's transaction: a row lock held to that commit would make 1,000
   * hosts registering at once queue here with their pool connections).
   */
  async invalidate(m: EntityManager, clusterId: string): Promise<void> {
    await m.query(
      `INSERT INTO cluster_cpu_plans (cluster_id) VALUES ($1)
       ON CONFLICT (cluster_id) DO UPDATE SET generation = cluster_cpu_plans.generation + 1`,
      [clusterId],
    );
  }

  /**
   * The cluster's plan: the stored one when current, else one asked of cpu-compat now (and stored unless a
   * host registered meanwhile). The generation is read before the hosts, so a plan stored under it
   * never misses a host that registered before it was read. `stored`: the cluster's row as the caller just
   * read it (null: none), so that VM creation reads it with its host, in one statement; undefined: read here.
   */
  async get(clusterId: string, stored?: StoredPlan | null): Promise<CachedPlan> {
    const row = stored !== undefined ? stored : (await runPrepared<StoredPlan>(this.db, CLUSTER_PLAN, [clusterId]))[0];
    if (row && row.planned_generation === row.generation) return { mode: row.mode, reason: row.reason ?? '' };
    const hosts = await runPrepared<{ id: string; cpu_vendor: string; cpu_features: string[] }>(this.db, ONE_HOST_PER_CPU, [clusterId]);
    if (hosts.length === 0) return { mode: null, reason: 'the cluster has no hosts' };
    const plan = await this.cpu.plan(hosts.map((h) => ({ id: h.id, cpu: { vendor: h.cpu_vendor as HostCpu['vendor'], modelName: '', features: h.cpu_features } })));
    if (row) {
      await this.db.query('UPDATE cluster_cpu_plans SET planned_generation = generation, mode = $3, reason = $4 WHERE cluster_id = $1 AND generation = $2', [
        clusterId,
        row.generation,
        plan.mode,
        plan.reason,
      ]);
    }
    return { mode: plan.mode, reason: plan.reason };
  }
}
