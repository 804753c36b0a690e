import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { ErrorCode, FlexmigError, Host, HostDown, type HostListItem, HostHeartbeat, HostRegistered, HostRegistration, HostUp, Cluster, IMC_OFF, MessageOf, vmDigest, type Page, type PageQuery } from '@flexmig/contracts';
import { keysetPageSql, prepared, preparedText, runPrepared } from '@flexmig/persistence';
import { Repeats } from '@flexmig/timing';
import { Counter, Gauge } from 'prom-client';

const hostsByState = new Gauge({
  name: 'flexmig_hosts',
  help: 'Registered hosts by state (up, down) and maintenance, as inventory last counted them.',
  labelNames: ['state', 'maintenance'],
});
const silenceHeld = new Gauge({
  name: 'flexmig_inventory_hosts_silence_held',
  help: 'Silent hosts the liveness sweep did not mark down: so many fell silent at once that inventory takes it for its own deafness (HOST_MASS_SILENCE_SHARE).',
});
const heartbeatsRefused = new Counter({
  name: 'flexmig_heartbeats_refused_total',
  help: 'Heartbeats ignored because another agent process (instance id) owns the host.',
});
import { ClusterEntity, HostEntity } from '../entities';
import { clusterView, hostListItemView, hostView, ratiosOf } from '../views';
import { hostNotFound, hostOwnedByAnotherAgent } from '../errors';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { ClustersService } from '../clusters/clusters.service';
import { ClusterCpuPlans } from '../clusters/cluster-cpu-plans';
import { featureListOncePerSetSql, featureSetsOf } from './feature-sets';
import { EventOutbox, OUTBOX_COLUMNS, outboxEvent, outboxValues } from '../events/event-outbox';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';
import { FleetSilence, Hearing, massSilence } from './hearing';

@Injectable()
export class HostsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(HostsService.name);
  private readonly sweepFailures = new Repeats(this.log);
  private readonly massSilenceSaid = new Repeats(this.log);
  private sweeper?: NodeJS.Timeout;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly cpu: CpuCompatClient,
    private readonly clusters: ClustersService,
    private readonly plans: ClusterCpuPlans,
    private readonly events: EventOutbox,
    @Inject(INVENTORY_CONFIG) private readonly config: InventoryConfig,
    private readonly hearing: Hearing,
  ) {}

  onApplicationBootstrap(): void {
    this.sweeper = setInterval(() => {
      this.markSilentHostsDown()
        .then(() => this.countForMetrics())
        .then(
          () => this.sweepFailures.recovered('the liveness sweep'),
          (e) => this.sweepFailures.failed(`liveness sweep failed: ${(e as Error).message}`),
        );
    }, this.config.hostCheckIntervalMs);
  }

  onApplicationShutdown(): void {
    clearInterval(this.sweeper);
  }

  /**
   * An agent (re-)registers its host. The CPU is evaluated by cpu-compat; a host that lacks its cluster's
   * mode is refused with the missing features named, and nothing is written. A host whose agent process
   * (another instance id) still heartbeats is refused: two agents with one HOST_ID.
   *
   * No transaction is held across a NATS request (docs/reconciliation.md, "No pool starvation"): cpu-compat is asked first, then
   * one short transaction re-reads the cluster's mode under its share lock and writes, or starts over
   * when the mode changed in between.
   */
  async register(r: HostRegistration): Promise<{ host: Host; cluster: Cluster }> {
    // first: a CPU that cpu-compat refuses (no features, unknown vendor) writes nothing, not even a cluster
    const evaluation = await this.cpu.evaluate(r.cpu);
    const now = new Date();
    // A vendor without an IMC ladder (Zhaoxin/VIA) has no mode to check: only IMC off (passthrough) fits it.
    const ladderless = evaluation.maxImcMode === null && evaluation.ladder.length === 0;
    // the mode to check against, read without creating anything: a cluster named for the first time has none
    let mode = (await this.clusters.findForHost(r))?.imcMode ?? null;
    for (let attempt = 1; ; attempt++) {
      const verdict = mode && mode !== IMC_OFF && !ladderless ? await this.cpu.verdict(mode, r.cpu) : undefined;
      const checkedMode = mode;
      const written = await this.db.transaction(async (m): Promise<{ cluster: ClusterEntity; cpuChanged: boolean } | { changedMode: string | null }> => {
        // share-locked from the mode check to the host's write: a mode change (which locks it for
        // update) cannot slip in between and leave a host below its cluster's mode
        // a cluster named for the first time is created in this transaction: refused, the host leaves none behind
        const resolved = await this.clusters.resolveForHost(r, m);
        const cluster = await m.getRepository(ClusterEntity).findOneOrFail({ where: { id: resolved.id }, lock: { mode: 'pessimistic_read' } });
        if (cluster.imcMode !== checkedMode) return { changedMode: cluster.imcMode };
        if (ladderless && cluster.imcMode !== IMC_OFF) {
          throw new FlexmigError(
            ErrorCode.CpuIncompatible,
            `host ${r.hostId} cannot join cluster ${cluster.name} (IMC mode ${cluster.imcMode ?? 'not set'}): ${evaluation.reason ?? `${r.cpu.vendor} has no IMC ladder`}`,
            { hostId: r.hostId, clusterId: cluster.id, mode: cluster.imcMode, missing: [] },
          );
        }
        if (verdict && !verdict.compatible) {
          throw new FlexmigError(
            ErrorCode.CpuIncompatible,
            `host ${r.hostId} cannot join cluster ${cluster.name}: its CPU lacks the cluster's mode ${cluster.imcMode} (${verdict.reason})`,
            { hostId: r.hostId, clusterId: cluster.id, mode: cluster.imcMode, missing: verdict.missing },
          );
        }
        const cpuChanged = await this.writeRegistration(m, r, cluster, evaluation.maxImcMode, now);
        await this.events.add(
          m,
          HostRegistered,
          { hostId: r.hostId, clusterId: cluster.id, maxImcMode: evaluation.maxImcMode, cpu: { vendor: r.cpu.vendor, modelName: r.cpu.modelName, features: [...r.cpu.features].sort() } },
          { id: `${r.hostId}:registered:${now.getTime()}`, subject: r.hostId, time: now },
        );
        return { cluster, cpuChanged };
      });
      if ('cluster' in written) {
        void this.events.committed();
        // after the commit, in a statement of its own: registrations into one cluster do not queue on the plan's row
        if (written.cpuChanged) await this.plans.invalidate(this.db.manager, written.cluster.id);
        return this.announce(r, written.cluster);
      }
      if (attempt >= 5) {
        throw new FlexmigError(ErrorCode.Conflict, `the CPU mode of cluster ${r.clusterName ?? r.clusterId} kept changing while host ${r.hostId} registered: try again`, { hostId: r.hostId }, true);
      }
      mode = written.changedMode;
    }
  }

  /** The host's row, inside the registration's transaction; refuses a live host owned by another agent process. */
  /** Resolves true when the cluster's set of host CPUs changed (a new host, or another CPU). */
  private async writeRegistration(m: EntityManager, r: HostRegistration, cluster: ClusterEntity, maxImcMode: string | null, now: Date): Promise<boolean> {
    const repo = m.getRepository(HostEntity);
    const existing = await repo.findOne({ where: { id: r.hostId }, lock: { mode: 'pessimistic_write' } });
    if (existing && existing.clusterId !== cluster.id) {
      throw new FlexmigError(
        ErrorCode.Conflict,
        `host ${r.hostId} is registered in another cluster (${existing.clusterId}); a host moves between clusters only when it runs no VMs and is removed first`,
        { hostId: r.hostId, clusterId: existing.clusterId },
      );
    }
    if (existing?.agentInstanceId && existing.agentInstanceId !== r.instanceId) {
      const [{ since }] = (await m.query('SELECT (extract(epoch FROM now() - last_heartbeat_at) * 1000)::float8 AS since FROM hosts WHERE id = $1', [r.hostId])) as { since: number }[];
      if (since < this.config.hostDownAfterMs) throw hostOwnedByAnotherAgent(r.hostId, existing.agentInstanceId, r.instanceId, since, this.config.hostDownAfterMs);
      this.log.warn(`host ${r.hostId}: agent instance ${r.instanceId} takes over from ${existing.agentInstanceId}, silent for ${Math.round(since)} ms`);
    }
    const cpuChanged = !existing || existing.cpuVendor !== r.cpu.vendor || !sameFeatures(existing.cpuFeatures, r.cpu.features);
    const digest = vmDigest(r.vms);
    await repo.save({
      id: r.hostId,
      clusterId: cluster.id,
      hostname: r.hostname,
      cpuVendor: r.cpu.vendor,
      cpuModelName: r.cpu.modelName,
      cpuFeatures: [...r.cpu.features].sort(),
      maxImcMode,
      memoryMiB: r.memoryMiB,
      vcpus: r.vcpus,
      driver: r.driver,
      migrationAddress: r.migrationAddress,
      state: 'up',
      maintenance: existing?.maintenance ?? false,
      lastHeartbeatAt: now,
      registeredAt: now,
      agentInstanceId: r.instanceId,
      vmDigest: digest,
      reportedVms: r.vms,
      reportedDigest: digest,
      reportedAt: now,
    });
    return cpuChanged;
  }

  private async announce(r: HostRegistration, cluster: ClusterEntity): Promise<{ host: Host; cluster: Cluster }> {
    const host = await this.get(r.hostId);
    this.log.log(`host ${host.id} registered in cluster ${cluster.name}: ${host.cpu.modelName}, highest mode ${host.maxImcMode ?? 'none'} (agent instance ${r.instanceId})`);
    return { host, cluster: clusterView(cluster) };
  }

  /**
   * A heartbeat from the agent process that owns the host, written at once: liveness, the digest of its VM
   * set and, when carried, the set itself. A beat from another process is ignored (counted, and logged
   * once a minute). Resolves true when the beat counted. Most beats (nothing new, or a new VM set with its
   * list) come through HeartbeatBatch instead, many hosts to one statement; it hands the others here.
   */
  async heartbeat(m: MessageOf<typeof HostHeartbeat>, attempt = 1): Promise<boolean> {
    // host.up is written by the same statement, should the beat find the host down
    const up = outboxEvent(HostUp, { hostId: m.hostId }, { id: `${m.hostId}:up:${Date.now()}`, subject: m.hostId });
    const rows = await runPrepared<{ id: string; was: string }>(this.db, HEARTBEAT, [m.hostId, m.instanceId, m.vmDigest, m.vms ? JSON.stringify(m.vms) : null, ...outboxValues(up)]);
    if (rows.length === 0) {
      const owner = await this.ownerOf(m.hostId);
      if (owner === undefined) return false; // not registered (yet): nothing to write, nothing to refuse
      // an UPDATE joined to its own row locked FOR UPDATE can come back empty when another statement
      // updated the row meanwhile (a batched beat, the liveness sweep): the owner's beat is then tried again once
      if (attempt === 1 && owner === m.instanceId) return this.heartbeat(m, 2);
      this.refusedHeartbeat(m.hostId, m.instanceId, owner);
      return false;
    }
    if (rows[0]?.was === 'down') {
      void this.events.committed();
      this.log.log(`host ${m.hostId} is up again`);
    }
    return true;
  }

  private async ownerOf(hostId: string): Promise<string | null | undefined> {
    return (await this.db.getRepository(HostEntity).findOne({ where: { id: hostId }, select: { id: true, agentInstanceId: true } }))?.agentInstanceId;
  }

  /** Once a minute per host and agent process. */
  private readonly refusals = new Repeats(this.log, 60_000);
  private refusedHeartbeat(hostId: string, instanceId: string, owner: string | null): void {
    heartbeatsRefused.inc();
    this.refusals.failed(`heartbeat of host ${hostId} from agent instance ${instanceId} ignored: the host is owned by instance ${owner} (two agents with one HOST_ID?)`, `${hostId}:${instanceId}`);
  }

  private async countForMetrics(): Promise<void> {
    const rows: { state: string; maintenance: boolean; n: number }[] = await this.db.query(
      'SELECT state, maintenance, count(*)::int AS n FROM hosts GROUP BY state, maintenance',
    );
    hostsByState.reset();
    for (const r of rows) hostsByState.set({ state: r.state, maintenance: String(r.maintenance) }, r.n);
  }

  /**
   * Hosts silent for longer than HOST_DOWN_AFTER_MS go down; one replica wins each row. Not while this
   * replica may have missed their beats (`Hearing`: NATS away, a write refused, just started), nor when so
   * many fell silent at once that the silence is more likely this replica's (`massSilence`: a silent
   * partition from NATS, which its client sees only when its pings go unanswered).
   */
  async markSilentHostsDown(): Promise<string[]> {
    if (!this.hearing.judges()) {
      silenceHeld.set(0);
      return [];
    }
    const windowMs = this.config.hostDownAfterMs;
    const [fleet] = await runPrepared<FleetSilence & { cutoff: string }>(this.db, UP_HOSTS_SILENCE, [windowMs, windowMs / 2]);
    const held = massSilence(fleet, this.config.massSilence);
    silenceHeld.set(held ? fleet.silent : 0);
    if (held) {
      this.massSilenceSaid.failed(
        `${fleet.silent} of ${fleet.up} up hosts have been silent for HOST_DOWN_AFTER_MS (${windowMs} ms) and ${fleet.quiet} for half of it: ` +
          `so many at once (HOST_MASS_SILENCE_SHARE ${this.config.massSilence.share}, HOST_MASS_SILENCE_MIN ${this.config.massSilence.minHosts}) ` +
          'that this replica takes it for its own deafness and marks none of them down. Check its path to NATS (a partition, a firewall); ' +
          'if the hosts did stop, put them in maintenance or set HOST_MASS_SILENCE_MIN=0 (docs/reconciliation.md, "Many hosts silent at once")',
        'mass silence',
      );
      return [];
    }
    this.massSilenceSaid.recovered('the liveness sweep, held for a mass silence,');
    if (fleet.silent === 0) return [];
    const rows = await this.db.transaction(async (m) => {
      const down = await runPrepared<{ id: string; last_heartbeat_at: Date }>(m, SILENT_HOSTS_DOWN, [fleet.cutoff]);
      for (const r of down) {
        await this.events.add(m, HostDown, { hostId: r.id, lastHeartbeatAt: r.last_heartbeat_at.toISOString() }, { id: `${r.id}:down:${r.last_heartbeat_at.getTime()}`, subject: r.id });
      }
      return down;
    });
    if (rows.length === 0) return [];
    void this.events.committed();
    for (const r of rows) this.log.warn(`host ${r.id} is down: no heartbeat since ${r.last_heartbeat_at.toISOString()}`);
    return rows.map((r) => r.id);
  }

  async get(id: string): Promise<Host> {
    const [row] = await this.viewRows('h.id = $1', [id]);
    if (!row) throw hostNotFound(id);
    return hostViewOf(row, row.cpu_features!);
  }

  /**
   * A page of hosts by id, with what each holds and may hold, in one statement: the page's hosts, what
   * each of them holds and how many VMs it has (`host_allocations`, kept by PostgreSQL: capacity.ts) and
   * their clusters' ratios. With `vmCount`, a list of hosts need not read every VM to show it.
   * Each host names its CPU's feature list by digest, and the page carries each list once (`featureSets`).
   * Without TypeORM's builder and hydration, which were a third of a 1,000-host page's time (docs/scale.md).
   */
  async page(q: { clusterId?: string } & PageQuery): Promise<Page<HostListItem> & { featureSets: Record<string, string[]> }> {
    const { rows, nextCursor } = await keysetPageSql<HostViewRow>(this.db.manager, {
      table: 'hosts',
      alias: 'h',
      keys: ['id'],
      idColumn: 'id',
      filters: { cluster_id: q.clusterId },
      page: q,
      idOf: (r) => r.id,
      select: (condition, params) => this.viewRows(condition, params),
    });
    return { items: rows.map(hostListItemOf), featureSets: Object.fromEntries(featureSetsOf(rows)), nextCursor };
  }

  /**
   * Hosts as the API shows them (`where` filters, orders and limits `hosts h`), ordered by id, with each
   * CPU feature list once, on the first row of its digest (feature-sets.ts): parsing a list per host was
   * most of the pg driver's work for a page of 1,000 hosts (docs/scale.md).
   */
  private viewRows(where: string, params: unknown[]): Promise<HostViewRow[]> {
    // a handful of texts (one host, a page with a cluster or not, with a cursor or not): each prepared
    return runPrepared<HostViewRow>(
      this.db,
      preparedText(`WITH page AS (SELECT ${PAGE_COLUMNS}, h.cpu_feature_set AS feature_set FROM hosts h WHERE ${where})
       SELECT ${VIEW_COLUMNS},
         p.feature_set, coalesce(held.memory_mib, 0) AS held_memory, coalesce(held.vcpus, 0) AS held_vcpus,
         c.cpu_allocation_ratio, c.memory_allocation_ratio, coalesce(held.vms, 0) AS vm_count
       FROM page p JOIN clusters c ON c.id = p.cluster_id LEFT JOIN host_allocations held ON held.host_id = p.id
         ${FEATURE_LIST.join}
       ORDER BY p.id`),
      params,
    );
  }
}

/**
 * A beat written on its own: one HeartbeatBatch does not write (prepared: a fleet's beats run it). A host it
 * finds down writes its host.up event ($5–$10, `outboxValues`) in the same statement.
 */
const HEARTBEAT = prepared(
  'inventory_heartbeat',
  `WITH beat AS (
     UPDATE hosts h SET last_heartbeat_at = now(), state = 'up', vm_digest = $3,
       reported_vms = COALESCE($4::jsonb, h.reported_vms),
       reported_digest = CASE WHEN $4::jsonb IS NULL THEN h.reported_digest ELSE $3 END,
       reported_at = CASE WHEN $4::jsonb IS NOT NULL OR h.reported_digest = $3 THEN now() ELSE h.reported_at END,
       agent_instance_id = COALESCE(h.agent_instance_id, $2)
     FROM (SELECT id, state AS was FROM hosts WHERE id = $1 FOR UPDATE) old
     WHERE h.id = old.id AND (h.agent_instance_id = $2 OR h.agent_instance_id IS NULL) RETURNING h.id, old.was),
   up AS (
     INSERT INTO ${OUTBOX_COLUMNS} SELECT $5, $6, $7, $8::jsonb, $9, $10 FROM beat WHERE beat.was = 'down'
     ON CONFLICT (event_id) DO NOTHING)
   SELECT id, was FROM beat`,
);
/**
 * The up hosts, those not heard for half of HOST_DOWN_AFTER_MS ($2) and those not heard for all of it ($1),
 * with that moment (as text: a Date would drop its microseconds), so that the sweep marks down exactly the
 * hosts it counted silent (`massSilence`).
 */
const UP_HOSTS_SILENCE = prepared(
  'inventory_up_hosts_silence',
  `SELECT count(*)::int AS up,
     count(*) FILTER (WHERE last_heartbeat_at < now() - make_interval(secs => $2::double precision / 1000))::int AS quiet,
     count(*) FILTER (WHERE last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000))::int AS silent,
     (now() - make_interval(secs => $1::double precision / 1000))::text AS cutoff
   FROM hosts WHERE state = 'up'`,
);
const SILENT_HOSTS_DOWN = prepared(
  'inventory_silent_hosts_down',
  `UPDATE hosts SET state = 'down' WHERE state = 'up' AND last_heartbeat_at < $1::timestamptz RETURNING id, last_heartbeat_at`,
);

/** The columns of `hosts` that the API's `Host` shows (not the reported VM set, which only reconciliation reads). */
const HOST_VIEW_COLUMNS = [
  'id', 'cluster_id', 'hostname', 'cpu_vendor', 'cpu_model_name', 'cpu_features', 'max_imc_mode', 'memory_mib', 'vcpus',
  'driver', 'migration_address', 'state', 'maintenance', 'last_heartbeat_at', 'registered_at', 'agent_instance_id',
];
/** What the page's CTE carries of each host: not its feature list, which the view reads once per feature set. */
const PAGE_COLUMNS = HOST_VIEW_COLUMNS.filter((c) => c !== 'cpu_features').map((c) => `h.${c}`).join(', ');
/** Times as milliseconds since the epoch (a float8): the pg driver parses a timestamp's text with a regular expression, about 1.4 ms a page of 1,000 hosts. */
const TIME_COLUMNS = new Set(['last_heartbeat_at', 'registered_at']);
const FEATURE_LIST = featureListOncePerSetSql('page', 'p');
const VIEW_COLUMNS = HOST_VIEW_COLUMNS.map((c) =>
  c === 'cpu_features' ? `${FEATURE_LIST.column} AS cpu_features` : TIME_COLUMNS.has(c) ? `(extract(epoch FROM p.${c}) * 1000)::float8 AS ${c}` : `p.${c}`,
).join(', ');

interface HostViewRow {
  id: string;
  cluster_id: string;
  hostname: string;
  cpu_vendor: string;
  cpu_model_name: string;
  /** On the first row of its feature set only (feature-sets.ts). */
  cpu_features: string[] | null;
  feature_set: string;
  max_imc_mode: string | null;
  memory_mib: number;
  vcpus: number;
  driver: string;
  migration_address: string;
  state: HostEntity['state'];
  maintenance: boolean;
  /** Milliseconds since the epoch. */
  last_heartbeat_at: number;
  registered_at: number;
  agent_instance_id: string | null;
  held_memory: number;
  held_vcpus: number;
  cpu_allocation_ratio: number;
  memory_allocation_ratio: number;
  /** Its VMs in every state (`host_allocations.vms`, kept by PostgreSQL: capacity.ts). */
  vm_count: number;
}

/** The columns a host view is made of, by their names in the entity. */
const shownOf = (r: HostViewRow) => ({
  id: r.id,
  clusterId: r.cluster_id,
  hostname: r.hostname,
  cpuVendor: r.cpu_vendor,
  cpuModelName: r.cpu_model_name,
  maxImcMode: r.max_imc_mode,
  memoryMiB: r.memory_mib,
  vcpus: r.vcpus,
  driver: r.driver,
  migrationAddress: r.migration_address,
  state: r.state,
  maintenance: r.maintenance,
  lastHeartbeatAt: new Date(r.last_heartbeat_at),
  registeredAt: new Date(r.registered_at),
  agentInstanceId: r.agent_instance_id,
});
const heldOf = (r: HostViewRow) => ({ memoryMiB: r.held_memory, vcpus: r.held_vcpus });
const ratiosOfRow = (r: HostViewRow) => ratiosOf({ cpuAllocationRatio: r.cpu_allocation_ratio, memoryAllocationRatio: r.memory_allocation_ratio });

const hostViewOf = (r: HostViewRow, features: string[]): Host => ({ ...hostView({ ...shownOf(r), cpuFeatures: features }, heldOf(r), ratiosOfRow(r)), vmCount: r.vm_count });
const hostListItemOf = (r: HostViewRow): HostListItem => ({ ...hostListItemView(shownOf(r), r.feature_set, heldOf(r), ratiosOfRow(r)), vmCount: r.vm_count });

/** The same set of CPU features, whatever the order. */
function sameFeatures(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const sortedB = [...b].sort();
  return [...a].sort().every((f, i) => f === sortedB[i]);
}
