import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { Cluster, type ClusterDetail, CreateCluster, DEFAULT_ALLOCATION_RATIOS, HOST_PASSTHROUGH_BASELINE, IMC_OFF, type Page, type PageQuery, UpdateAllocationRatios } from '@flexmig/contracts';
import { isUniqueViolation, keysetPage, prepared, runPrepared } from '@flexmig/persistence';
import { ClusterEntity } from '../entities';
import { clusterView } from '../views';
import { clusterNameTaken, clusterNotFound } from '../errors';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { ClusterCpuPlans } from './cluster-cpu-plans';

const HOST_COUNTS = prepared('inventory_cluster_host_counts', 'SELECT cluster_id, count(*)::int AS n FROM hosts WHERE cluster_id = ANY($1::uuid[]) GROUP BY cluster_id');

@Injectable()
export class ClustersService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly cpu: CpuCompatClient,
    private readonly plans: ClusterCpuPlans,
  ) {}

  async create(input: CreateCluster): Promise<Cluster> {
    // validate first: nothing is written for a bad mode name
    const imcMode = !input.imcMode ? null : input.imcMode.trim().toLowerCase() === IMC_OFF ? IMC_OFF : (await this.cpu.model(input.imcMode)).name;
    try {
      const saved = await this.db.getRepository(ClusterEntity).save({
        name: input.name,
        imcMode,
        cpuAllocationRatio: input.cpuAllocationRatio ?? DEFAULT_ALLOCATION_RATIOS.cpuAllocationRatio,
        memoryAllocationRatio: input.memoryAllocationRatio ?? DEFAULT_ALLOCATION_RATIOS.memoryAllocationRatio,
      });
      return { ...clusterView(await this.db.getRepository(ClusterEntity).findOneByOrFail({ id: saved.id })), hostCount: 0 };
    } catch (e) {
      if (isUniqueViolation(e)) throw clusterNameTaken(input.name);
      throw e;
    }
  }

  /**
   * New allocation ratios for a cluster's hosts. Lowering them below what a host holds already is allowed
   * (nothing running is moved or stopped, as in Nova): that host takes no new VM until it is under again.
   */
  async setAllocationRatios(id: string, change: UpdateAllocationRatios): Promise<Cluster> {
    const repo = this.db.getRepository(ClusterEntity);
    await this.entity(id);
    await repo.update({ id }, change);
    const cluster = clusterView(await repo.findOneByOrFail({ id }));
    return { ...cluster, hostCount: (await this.hostCounts([id])).get(id) ?? 0 };
  }

  /** A page of clusters, oldest first, each with its host count. */
  async page(q: PageQuery): Promise<Page<Cluster>> {
    const { rows, nextCursor } = await keysetPage(this.db.getRepository(ClusterEntity).createQueryBuilder('c'), { keys: ['created_at', 'id'], idKey: 'id', direction: 'ASC', page: q });
    const counts = await this.hostCounts(rows.map((c) => c.id));
    return { items: rows.map((c) => ({ ...clusterView(c), hostCount: counts.get(c.id) ?? 0 })), nextCursor };
  }

  /** How many hosts each of the clusters named has (an index-only count on `hosts_cluster_by_id`: their hosts, not the fleet's). */
  private async hostCounts(ids: string[]): Promise<Map<string, number>> {
    const rows = await runPrepared<{ cluster_id: string; n: number }>(this.db, HOST_COUNTS, [ids]);
    return new Map(rows.map((r) => [r.cluster_id, r.n]));
  }

  async entity(id: string, m: EntityManager = this.db.manager): Promise<ClusterEntity> {
    const c = await m.getRepository(ClusterEntity).findOneBy({ id });
    if (!c) throw clusterNotFound(id);
    return c;
  }

  /**
   * The cluster, its host count and the baseline its VMs get by default, from the cluster's stored plan
   * (ClusterCpuPlans: asked of cpu-compat again only after a host with a new CPU joined). No host is read:
   * the answer costs the same at 1,000 hosts as at one.
   */
  async detail(id: string): Promise<ClusterDetail> {
    const cluster = await this.entity(id);
    const n = (await this.hostCounts([id])).get(id) ?? 0;
    const plan = n > 0 ? await this.plans.get(id) : null;
    return {
      ...clusterView(cluster),
      effectiveMode: cluster.imcMode === IMC_OFF ? HOST_PASSTHROUGH_BASELINE : (cluster.imcMode ?? plan?.mode ?? null),
      hostCount: n,
      plan,
    };
  }

  /**
   * The cluster for a registering host: by id, or by name (created when missing). `m`: the registration's
   * transaction, so that a cluster created for a registration that is then refused is rolled back with it.
   */
  /** The cluster a registration names, without creating it: undefined for a name seen for the first time. */
  async findForHost(ref: { clusterId?: string; clusterName?: string }, m: EntityManager = this.db.manager): Promise<ClusterEntity | undefined> {
    if (ref.clusterId) return this.entity(ref.clusterId, m);
    return (await m.getRepository(ClusterEntity).findOneBy({ name: ref.clusterName! })) ?? undefined;
  }

  async resolveForHost(ref: { clusterId?: string; clusterName?: string }, m: EntityManager = this.db.manager): Promise<ClusterEntity> {
    const repo = m.getRepository(ClusterEntity);
    if (ref.clusterId) return this.entity(ref.clusterId, m);
    const name = ref.clusterName!;
    const found = await repo.findOneBy({ name });
    if (found) return found;
    await repo.createQueryBuilder().insert().values({ name, imcMode: null }).orIgnore().execute();
    return repo.findOneByOrFail({ name });
  }
}
