import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { ErrorCode, FlexmigError, Host, HostDown, HostRegistered, HostRegistration, HostUp, Cluster, IMC_OFF } from '@flexmig/contracts';
import { EventPublisher } from '@flexmig/messaging';
import { queryReturning } from '@flexmig/persistence';
import { Gauge } from 'prom-client';

const hostsByState = new Gauge({
  name: 'flexmig_hosts',
  help: 'Registered hosts by state (up, down) and maintenance, as inventory last counted them.',
  labelNames: ['state', 'maintenance'],
});
import { ClusterEntity, HostEntity } from '../entities';
import { clusterView, hostView } from '../views';
import { hostNotFound } from '../errors';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { ClustersService } from '../clusters/clusters.service';
import { allocations, none } from '../capacity';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';

@Injectable()
export class HostsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(HostsService.name);
  private sweeper?: NodeJS.Timeout;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly cpu: CpuCompatClient,
    private readonly clusters: ClustersService,
    private readonly events: EventPublisher,
    @Inject(INVENTORY_CONFIG) private readonly config: InventoryConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.sweeper = setInterval(() => {
      this.markSilentHostsDown()
        .then(() => this.countForMetrics())
        .catch((e) => this.log.warn(`liveness sweep failed: ${(e as Error).message}`));
    }, this.config.hostCheckIntervalMs);
  }

  onApplicationShutdown(): void {
    clearInterval(this.sweeper);
  }

  /**
   * An agent (re-)registers its host. The CPU is evaluated by cpu-compat; a host that lacks its cluster's
   * mode is refused with the missing features named, and nothing is written.
   */
  async register(r: HostRegistration): Promise<{ host: Host; cluster: Cluster }> {
    // first: a CPU that cpu-compat refuses (no features, unknown vendor) writes nothing, not even a cluster
    const evaluation = await this.cpu.evaluate(r.cpu);
    const now = new Date();
    // The cluster row stays share-locked from the mode check to the host's write: a mode change (which
    // locks it for update) cannot slip in between and leave a host below its cluster's mode.
    const cluster = await this.db.transaction(async (m) => {
      // a cluster named for the first time is created in this transaction: refused, the host leaves none behind
      const resolved = await this.clusters.resolveForHost(r, m);
      const cluster = await m.getRepository(ClusterEntity).findOneOrFail({ where: { id: resolved.id }, lock: { mode: 'pessimistic_read' } });
      if (cluster.imcMode && cluster.imcMode !== IMC_OFF) {
        const verdict = await this.cpu.verdict(cluster.imcMode, r.cpu);
        if (!verdict.compatible) {
          throw new FlexmigError(
            ErrorCode.CpuIncompatible,
            `host ${r.hostId} cannot join cluster ${cluster.name}: its CPU lacks the cluster's mode ${cluster.imcMode} (${verdict.reason})`,
            { hostId: r.hostId, clusterId: cluster.id, mode: cluster.imcMode, missing: verdict.missing },
          );
        }
      }
      const repo = m.getRepository(HostEntity);
      const existing = await repo.findOneBy({ id: r.hostId });
      if (existing && existing.clusterId !== cluster.id) {
        throw new FlexmigError(
          ErrorCode.Conflict,
          `host ${r.hostId} is registered in another cluster (${existing.clusterId}); a host moves between clusters only when it runs no VMs and is removed first`,
          { hostId: r.hostId, clusterId: existing.clusterId },
        );
      }
      await repo.save({
        id: r.hostId,
        clusterId: cluster.id,
        hostname: r.hostname,
        cpuVendor: r.cpu.vendor,
        cpuModelName: r.cpu.modelName,
        cpuFeatures: [...r.cpu.features].sort(),
        maxImcMode: evaluation.maxImcMode,
        memoryMiB: r.memoryMiB,
        vcpus: r.vcpus,
        driver: r.driver,
        migrationAddress: r.migrationAddress,
        state: 'up',
        maintenance: existing?.maintenance ?? false,
        lastHeartbeatAt: now,
        registeredAt: now,
      });
      return cluster;
    });
    const host = await this.get(r.hostId);
    await this.events.publish(
      HostRegistered,
      { hostId: host.id, clusterId: cluster.id, maxImcMode: host.maxImcMode, cpu: host.cpu },
      { id: `${host.id}:registered:${now.getTime()}`, subject: host.id, time: now },
    );
    this.log.log(`host ${host.id} registered in cluster ${cluster.name}: ${host.cpu.modelName}, highest mode ${host.maxImcMode ?? 'none'}`);
    return { host, cluster: clusterView(cluster) };
  }

  async heartbeat(hostId: string): Promise<void> {
    const rows = await queryReturning<{ id: string; was: string }>(
      this.db,
      `UPDATE hosts h SET last_heartbeat_at = now(), state = 'up'
       FROM (SELECT id, state AS was FROM hosts WHERE id = $1 FOR UPDATE) old
       WHERE h.id = old.id RETURNING h.id, old.was`,
      [hostId],
    );
    if (rows[0]?.was === 'down') {
      await this.events.publish(HostUp, { hostId }, { id: `${hostId}:up:${Date.now()}`, subject: hostId });
      this.log.log(`host ${hostId} is up again`);
    }
  }

  private async countForMetrics(): Promise<void> {
    const rows: { state: string; maintenance: boolean; n: number }[] = await this.db.query(
      'SELECT state, maintenance, count(*)::int AS n FROM hosts GROUP BY state, maintenance',
    );
    hostsByState.reset();
    for (const r of rows) hostsByState.set({ state: r.state, maintenance: String(r.maintenance) }, r.n);
  }

  /** Hosts silent for longer than HOST_DOWN_AFTER_MS go down; one replica wins each row. */
  async markSilentHostsDown(): Promise<string[]> {
    const rows = await queryReturning<{ id: string; last_heartbeat_at: Date }>(
      this.db,
      `UPDATE hosts SET state = 'down'
       WHERE state = 'up' AND last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000)
       RETURNING id, last_heartbeat_at`,
      [this.config.hostDownAfterMs],
    );
    for (const r of rows) {
      this.log.warn(`host ${r.id} is down: no heartbeat since ${r.last_heartbeat_at.toISOString()}`);
      await this.events.publish(
        HostDown,
        { hostId: r.id, lastHeartbeatAt: r.last_heartbeat_at.toISOString() },
        { id: `${r.id}:down:${r.last_heartbeat_at.getTime()}`, subject: r.id },
      );
    }
    return rows.map((r) => r.id);
  }

  async entity(id: string): Promise<HostEntity> {
    const h = await this.db.getRepository(HostEntity).findOneBy({ id });
    if (!h) throw hostNotFound(id);
    return h;
  }

  async get(id: string): Promise<Host> {
    const h = await this.entity(id);
    return hostView(h, (await allocations(this.db.manager, [id])).get(id) ?? none);
  }

  /** `m`: the caller's transaction, when it holds locks (no second pool connection then). */
  async list(filter: { clusterId?: string } = {}, m: EntityManager = this.db.manager): Promise<Host[]> {
    const hosts = await m.getRepository(HostEntity).find({
      where: filter.clusterId ? { clusterId: filter.clusterId } : {},
      order: { id: 'ASC' },
    });
    const held = await allocations(m);
    return hosts.map((h) => hostView(h, held.get(h.id) ?? none));
  }
}
