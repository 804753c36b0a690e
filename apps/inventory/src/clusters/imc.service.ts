import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, In } from 'typeorm';
import {
  type AutoImcResult,
  type AutoImcTry,
  ClusterImc,
  ClusterImcModeChanged,
  ClusterImcPlan,
  ErrorCode,
  FlexmigError,
  HOST_PASSTHROUGH_BASELINE,
  IMC_OFF,
  type ImcChange,
  ListCpuModes,
  ModeVerification,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { prepared, runPrepared } from '@flexmig/persistence';
import { EventOutbox } from '../events/event-outbox';
import { ClusterEntity, HostEntity, VmEntity } from '../entities';
import { clusterNotFound } from '../errors';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { featureListOncePerSetSql, featureSetsOf } from '../hosts/feature-sets';

/** VM states that hold a baseline: a VM keeps the baseline it started with until it is powered off. */
const LIVE_VM_STATES: VmEntity['state'][] = ['starting', 'running'];
/** The baselines of a cluster's ($1) VMs in the states of $2, each once. */
const LIVE_BASELINES = prepared('inventory_cluster_live_baselines', 'SELECT DISTINCT cpu_baseline FROM vms WHERE cluster_id = $1 AND state = ANY($2::text[]) ORDER BY cpu_baseline');

/**
 * A cluster's host as the IMC routes need it: its CPU (the feature list shared by every host of its set, read
 * once) and what the report shows. Not the whole row: at 1,000 hosts the rows with their feature lists and
 * reported VMs are 1.8 MB, which took 14–23 ms to read where this takes 2.4–3.4 ms (docs/scale.md).
 */
interface ImcHost {
  id: string;
  cpuVendor: string;
  cpuModelName: string;
  maxImcMode: string | null;
  state: HostEntity['state'];
  featureSet: string;
  cpuFeatures: string[];
}

const featureList = featureListOncePerSetSql('c', 'h');
/** A cluster's hosts ($1) by id, each feature list on the first host of its set (ImcHost). */
const CLUSTER_HOSTS_FOR_IMC = prepared(
  'inventory_cluster_hosts_for_imc',
  `WITH c AS (SELECT id, cpu_vendor, cpu_model_name, max_imc_mode, state, cpu_feature_set AS feature_set FROM hosts WHERE cluster_id = $1)
   SELECT h.id, h.cpu_vendor, h.cpu_model_name, h.max_imc_mode, h.state, h.feature_set, ${featureList.column} AS cpu_features
   FROM c h ${featureList.join}
   ORDER BY h.id`,
);
interface ImcHostRow {
  id: string;
  cpu_vendor: string;
  cpu_model_name: string;
  max_imc_mode: string | null;
  state: HostEntity['state'];
  feature_set: string;
  cpu_features: string[] | null;
}

/** A mode as the service handles it: a canonical catalog name, IMC off, or unset. */
type Mode = { kind: 'named'; name: string } | { kind: 'off' } | { kind: 'unset' };
const modeValue = (m: Mode): string | null => (m.kind === 'named' ? m.name : m.kind === 'off' ? IMC_OFF : null);

// ---- pre-checks: each raises one error (STYLE.md 7) ----

const hostsLackMode = (cluster: ClusterEntity, v: ModeVerification) => {
  const failing = v.hosts.filter((h) => !h.pass);
  return new FlexmigError(
    ErrorCode.CpuIncompatible,
    `cluster ${cluster.name} cannot use mode ${v.mode}: ${failing.map((h) => `host ${h.hostId} ${h.vendorMismatch ? 'is of another vendor' : `lacks ${h.missing.join(', ')}`}`).join('; ')}`,
    { clusterId: cluster.id, mode: v.mode, hosts: failing.map((h) => ({ hostId: h.hostId, missing: h.missing, vendorMismatch: h.vendorMismatch, reason: h.reason })) },
  );
};

/** The most VMs a refusal names (oldest first); it counts them all. */
const VMS_NAMED = 100;
const VMS_IN_MESSAGE = 10;

const vmsAboveMode = (cluster: ClusterEntity, mode: string, vms: VmEntity[], total: number) => {
  const named = vms.slice(0, VMS_IN_MESSAGE).map((v) => `${v.name} (${v.id}, ${v.cpuBaseline} on ${v.hostId})`).join(', ');
  const more = total > VMS_IN_MESSAGE ? ` and ${total - VMS_IN_MESSAGE} more` : '';
  return new FlexmigError(
    ErrorCode.Conflict,
    `cluster ${cluster.name} cannot go down to mode ${mode}: ${total} running VM(s) use a higher baseline and keep it until powered off: ${named}${more}`,
    { clusterId: cluster.id, mode, vmCount: total, vms: vms.map((v) => ({ vmId: v.id, name: v.name, hostId: v.hostId, cpuBaseline: v.cpuBaseline })) },
  );
};

const noHosts = (cluster: ClusterEntity) =>
  new FlexmigError(ErrorCode.Conflict, `cluster ${cluster.name} has no hosts: there is nothing to choose a mode for`, { clusterId: cluster.id });

const mixedVendors = (cluster: ClusterEntity, vendors: string[]) =>
  new FlexmigError(ErrorCode.CpuIncompatible, `cluster ${cluster.name} mixes CPU vendors (${vendors.join(', ')}): no IMC mode fits them all`, {
    clusterId: cluster.id,
    vendors,
  });

/**
 * A cluster's CPU mode (IMC): show it, verify a mode against the hosts, set it under the rules of
 * DESIGN.md "CPU compatibility", or pick the highest mode every host passes. cpu-compat does the CPU
 * reasoning (over NATS); this service holds the cluster row lock while it checks and writes, so a
 * refused change leaves the cluster as it was.
 */
@Injectable()
export class ImcService {
  private readonly log = new Logger(ImcService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly cpu: CpuCompatClient,
    private readonly events: EventOutbox,
  ) {}

  async get(clusterId: string): Promise<ClusterImc> {
    const cluster = await this.cluster(this.db.manager, clusterId);
    const hosts = await this.hosts(this.db.manager, clusterId);
    const plan = hosts.length ? await this.cpu.plan(hosts.map(hostCpu)) : null;
    const mode = cluster.imcMode;
    return {
      clusterId: cluster.id,
      mode,
      passthrough: mode === IMC_OFF,
      effectiveMode: mode === IMC_OFF ? HOST_PASSTHROUGH_BASELINE : (mode ?? plan?.mode ?? null),
      commonMode: plan?.mode ?? null,
      holdingDown: plan?.holdingDown ?? [],
      hosts: hosts.map((h) => ({ hostId: h.id, vendor: h.cpuVendor, modelName: h.cpuModelName, maxImcMode: h.maxImcMode, state: h.state })),
    };
  }

  /**
   * cpu-compat's plan over the cluster's registered hosts (all of them, whatever their state: a host in
   * maintenance still holds the mode down, it comes back). No hosts: no mode, and the reason says so.
   */
  async plan(clusterId: string): Promise<ClusterImcPlan> {
    const cluster = await this.cluster(this.db.manager, clusterId);
    const hosts = await this.hosts(this.db.manager, clusterId);
    if (hosts.length === 0) return { clusterId, mode: null, reason: `cluster ${cluster.name} has no hosts: there is no mode to plan`, holdingDown: [], withoutHost: [], hostModes: [] };
    return { clusterId, ...(await this.cpu.plan(hosts.map(hostCpu))) };
  }

  /** Every host of the cluster against one mode. */
  async verify(clusterId: string, modeName: string): Promise<ModeVerification> {
    await this.cluster(this.db.manager, clusterId);
    const mode = await this.resolve(modeName);
    const hosts = await this.hosts(this.db.manager, clusterId);
    if (mode.kind !== 'named') {
      // IMC off asks nothing of a host: every host runs its own CPU
      return { mode: IMC_OFF, pass: true, hosts: hosts.map((h) => ({ hostId: h.id, pass: true, missing: [], vendorMismatch: false, reason: 'IMC off: the host presents its own CPU' })) };
    }
    return this.verifyHosts(mode.name, hosts);
  }

  /**
   * Sets the mode. Named: every host must pass it (so it is at most every host's highest), and no
   * running VM may have a baseline above it. "off": always allowed (running VMs keep their baselines).
   * null: the hosts' common mode applies, which no running baseline exceeds... except a passthrough VM's,
   * which is checked like any other.
   *
   * cpu-compat is asked with no transaction open (docs/reconciliation.md, "No pool starvation"); then one
   * transaction locks the cluster row, finds the mode, the hosts and the VMs' baselines as they were
   * checked (or checks again, at most 5 times), and writes: all or nothing.
   */
  async set(clusterId: string, modeName: string | null, by: string): Promise<ImcChange> {
    await this.cluster(this.db.manager, clusterId); // 404 before anything else
    const mode = modeName === null ? ({ kind: 'unset' } as const) : await this.resolve(modeName); // 404 UNKNOWN_CPU_MODEL
    const next = modeValue(mode);
    for (let attempt = 1; ; attempt++) {
      const checked = await this.check(clusterId, mode);
      if (checked.previousMode === next) return { clusterId, previousMode: next, mode: next, changed: false, by };
      const change = await this.db.transaction(async (m): Promise<ImcChange | undefined> => {
        const cluster = await this.cluster(m, clusterId, true);
        if (cluster.imcMode !== checked.previousMode || hostsFingerprint(await this.hosts(m, clusterId)) !== checked.hosts) return undefined;
        if (checked.baselines && (await this.liveBaselines(m, clusterId)).some((b) => !checked.baselines!.has(b))) return undefined;
        await m.getRepository(ClusterEntity).update({ id: clusterId }, { imcMode: next });
        const result: ImcChange = { clusterId, previousMode: checked.previousMode, mode: next, changed: true, by, ...(checked.verification ? { verification: checked.verification } : {}) };
        // the event is written with the change: both commit, or neither
        await this.announceChange(m, result);
        return result;
      });
      if (change) {
        void this.events.committed();
        this.log.log(`cluster ${clusterId}: IMC mode ${change.previousMode ?? 'unset'} → ${change.mode ?? 'unset'} (by ${by})`);
        return change;
      }
      if (attempt >= 5) {
        throw new FlexmigError(ErrorCode.Conflict, `cluster ${clusterId} kept changing (its mode, hosts or VMs) while its IMC mode was set: try again`, { clusterId }, true);
      }
    }
  }

  /**
   * The checks of a mode change, read without a transaction: what the transaction then finds unchanged
   * (the mode, the hosts, the VMs' baselines; `baselines` null when the change asks nothing of the VMs).
   */
  private async check(clusterId: string, mode: Mode): Promise<{ previousMode: string | null; hosts: string; baselines: Set<string> | null; verification?: ModeVerification }> {
    const cluster = await this.cluster(this.db.manager, clusterId);
    const hosts = await this.hosts(this.db.manager, clusterId);
    const base = { previousMode: cluster.imcMode, hosts: hostsFingerprint(hosts) };
    if (cluster.imcMode === modeValue(mode)) return { ...base, baselines: null };
    if (mode.kind === 'named') {
      const verification = await this.verifyHosts(mode.name, hosts);
      if (!verification.pass) throw hostsLackMode(cluster, verification);
      return { ...base, verification, baselines: await this.refuseVmsAbove(this.db.manager, cluster, mode.name) };
    }
    if (mode.kind === 'unset' && hosts.length > 0) {
      const plan = await this.cpu.plan(hosts.map(hostCpu));
      if (plan.mode) return { ...base, baselines: await this.refuseVmsAbove(this.db.manager, cluster, plan.mode) };
    }
    return { ...base, baselines: null };
  }

  /** Tries the modes of the hosts' ladder from the highest down and sets the first every host passes. */
  async auto(clusterId: string, by: string): Promise<AutoImcResult> {
    const cluster = await this.cluster(this.db.manager, clusterId);
    const hosts = await this.hosts(this.db.manager, clusterId);
    if (hosts.length === 0) throw noHosts(cluster);
    const vendors = [...new Set(hosts.map((h) => h.cpuVendor))].sort();
    if (vendors.length > 1) throw mixedVendors(cluster, vendors);
    const ladder = await this.bus.request(ListCpuModes, { vendor: vendors[0] as 'Intel' });
    const tries: AutoImcTry[] = [];
    for (const candidate of ladder.modes) {
      const v = await this.verifyHosts(candidate.name, hosts);
      tries.push({ mode: v.mode, pass: v.pass, failing: v.hosts.filter((h) => !h.pass).map((h) => ({ hostId: h.hostId, missing: h.missing, vendorMismatch: h.vendorMismatch })) });
      if (v.pass) {
        const change = await this.set(clusterId, v.mode, by); // the same rules as PUT (running VMs above it refuse it)
        return { clusterId, mode: v.mode, tries, change };
      }
    }
    throw new FlexmigError(ErrorCode.CpuIncompatible, `no ${vendors[0]} mode fits every host of cluster ${cluster.name} (not even ${ladder.modes.at(-1)?.name})`, {
      clusterId,
      tries,
    });
  }

  // ---- helpers ----

  private async resolve(name: string): Promise<Mode> {
    if (name.trim().toLowerCase() === IMC_OFF) return { kind: 'off' };
    return { kind: 'named', name: (await this.cpu.model(name.trim())).name };
  }

  private async cluster(m: EntityManager, id: string, lock = false): Promise<ClusterEntity> {
    const c = await m.getRepository(ClusterEntity).findOne({ where: { id }, ...(lock ? { lock: { mode: 'pessimistic_write' as const } } : {}) });
    if (!c) throw clusterNotFound(id);
    return c;
  }

  /** The cluster's hosts by id; hosts of one CPU share one feature list (one array). */
  private async hosts(m: EntityManager, clusterId: string): Promise<ImcHost[]> {
    const rows = await runPrepared<ImcHostRow>(m, CLUSTER_HOSTS_FOR_IMC, [clusterId]);
    const sets = featureSetsOf(rows);
    return rows.map((r) => {
      const cpuFeatures = sets.get(r.feature_set);
      if (!cpuFeatures) throw new FlexmigError(ErrorCode.Internal, `host ${r.id}'s CPU feature set ${r.feature_set} came without its list`, { hostId: r.id });
      return { id: r.id, cpuVendor: r.cpu_vendor, cpuModelName: r.cpu_model_name, maxImcMode: r.max_imc_mode, state: r.state, featureSet: r.feature_set, cpuFeatures };
    });
  }

  private verifyHosts(mode: string, hosts: ImcHost[]): Promise<ModeVerification> {
    return this.cpu.verify(mode, hosts.map(hostCpu));
  }

  /**
   * Lowering below a running VM's baseline is refused, naming the VMs. "Above" means the VM's baseline
   * has a feature the mode lacks (subset order: along a ladder and across its TSX branch alike); a
   * passthrough VM runs with its host's full CPU and is above every mode.
   */
  private async refuseVmsAbove(m: EntityManager, cluster: ClusterEntity, mode: string): Promise<Set<string>> {
    const baselines = await this.liveBaselines(m, cluster.id);
    if (baselines.length === 0) return new Set();
    const modeFeatures = new Set((await this.cpu.model(mode)).features);
    const above = new Map<string, boolean>();
    for (const baseline of baselines) {
      if (baseline === HOST_PASSTHROUGH_BASELINE) {
        above.set(baseline, true);
        continue;
      }
      const model = await this.cpu.model(baseline).catch(() => undefined);
      // a baseline the catalog no longer knows cannot be shown to be below: refuse rather than guess
      above.set(baseline, !model || model.features.some((f) => !modeFeatures.has(f)));
    }
    const blocking = baselines.filter((b) => above.get(b));
    if (blocking.length > 0) {
      const [vms, total] = await m.getRepository(VmEntity).findAndCount({
        where: { clusterId: cluster.id, state: In(LIVE_VM_STATES), cpuBaseline: In(blocking) },
        order: { createdAt: 'ASC', id: 'ASC' },
        take: VMS_NAMED,
      });
      throw vmsAboveMode(cluster, mode, vms, total);
    }
    return new Set(baselines);
  }

  /**
   * The baselines the cluster's running VMs hold, each once: what a mode change is checked against, read
   * in PostgreSQL rather than as every VM's row (10,000 VMs at 1,000 hosts).
   */
  private async liveBaselines(m: EntityManager, clusterId: string): Promise<string[]> {
    const rows = await runPrepared<{ cpu_baseline: string }>(m, LIVE_BASELINES, [clusterId, LIVE_VM_STATES]);
    return rows.map((r) => r.cpu_baseline);
  }

  private async announceChange(m: EntityManager, c: ImcChange): Promise<void> {
    const now = new Date();
    await this.events.add(
      m,
      ClusterImcModeChanged,
      { clusterId: c.clusterId, oldMode: c.previousMode, newMode: c.mode, by: c.by },
      { id: `${c.clusterId}:imc-mode:${now.getTime()}:${c.mode ?? 'unset'}`, subject: c.clusterId, time: now },
    );
  }
}

/**
 * The hosts of a cluster and their CPUs, as one string: a mode checked against them is still valid while it
 * is equal. A CPU is its vendor and its feature list's digest (`cpu_feature_set`, kept by PostgreSQL).
 */
const hostsFingerprint = (hosts: ImcHost[]) => JSON.stringify(hosts.map((h) => [h.id, h.cpuVendor, h.featureSet]));

const hostCpu = (h: ImcHost) => ({ id: h.id, cpu: { vendor: h.cpuVendor as 'Intel', modelName: h.cpuModelName, features: h.cpuFeatures } });
