import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  type Host,
  type MigrationPolicy,
  type MigrationPrediction,
  type PredictionInput,
  OpenLinkSink,
  ProbeLink,
  SampleDirtyRate,
  type Vm,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { prepared, runPrepared } from '@flexmig/persistence';
import { BYTES_PER_MIB, MAX_DOWNTIME_LIMIT_MS, predict, qemuAgentCopyBudgetMs, qemuAgentLimitForBudgetMs, qemuAgentStopCopyMs, simModelDowntimeLimitMs, simPolicyDowntimeLimitMs } from '@flexmig/migration-model';
import { type SagaState } from '@flexmig/saga';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { type MeasuredFigures, measuredByMigration } from './measured';
import { PlacementService } from '../placement/placement.service';
import { ClusterSettingsService } from '../settings/cluster-settings.service';
import { vmAndTarget } from '../migrations-api/prechecks';
import { predictionWithin, type RecordedPrediction } from './prediction-wait';

const defaults = { assumedBandwidthMiBps: 1250, dirtyRateMaxAgeMs: 600_000, waitMs: 250 };
/** A dirty-rate sample under QEMU takes about 5 s (two calc-dirty-rate windows) on a loaded host. */
const dirtyRateTimeoutMs = 60_000;
/** How long a link learnt from the hosts' last migration, or probed, is used before it is looked up again. */
const LINK_KEPT_MS = 60_000;
/** A probe: the source starts a probe QEMU and streams QEMU_LINK_PROBE_MIB (it gives up after 45 s). */
const probeTimeoutMs = 60_000;
/** An input's detail holds 500 characters (PredictionInputSchema). */
const detailChars = 500;
type LinkInputs = { bandwidth: Omit<PredictionInput, 'ageMs'>; setupMs?: Omit<PredictionInput, 'ageMs'>; switchoverFixedMs?: Omit<PredictionInput, 'ageMs'> };
export type ControlPlaneCosts = Pick<LinkInputs, 'setupMs' | 'switchoverFixedMs'>;

/** How many of a cluster's newest completed migrations give the control plane's costs of a pair that never migrated. */
const CLUSTER_COSTS_OF = 20;

/** A completed migration as a prediction learns from it: its stored figures, or (a row from before them) its saga. */
interface LearntRow {
  id: string;
  measured: MeasuredFigures | null;
  saga: SagaState | string | null;
  memory_mib: number;
  cap_mibps: number | null;
  finished_at: Date;
  source_host_id: string;
  same_pair: boolean;
}
const LEARNT_COLUMNS = `id, measured, CASE WHEN measured IS NULL THEN saga END AS saga, (vm->>'memoryMiB')::int AS memory_mib,
  (policy->>'bandwidthMiBps')::float8 AS cap_mibps, finished_at, source_host_id`;
/** The pair's last 5 completed migrations each way, and the cluster's last CLUSTER_COSTS_OF (every prediction asks: prepared). */
const LEARNT_LINK = prepared(
  'scheduler_learnt_link',
  `(SELECT ${LEARNT_COLUMNS}, true AS same_pair FROM migrations
     WHERE state = 'completed' AND source_host_id = $1 AND target_host_id = $2 ORDER BY finished_at DESC LIMIT 5)
   UNION ALL
   (SELECT ${LEARNT_COLUMNS}, true FROM migrations
     WHERE state = 'completed' AND source_host_id = $2 AND target_host_id = $1 ORDER BY finished_at DESC LIMIT 5)
   UNION ALL
   (SELECT ${LEARNT_COLUMNS}, false FROM migrations
     WHERE state = 'completed' AND cluster_id = $3 ORDER BY finished_at DESC LIMIT ${CLUSTER_COSTS_OF})`,
);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

/**
 * The control plane's costs for two hosts that never migrated between them: the median, over the cluster's
 * newest completed migrations, of the time outside pre-copy and the pause, and of the pause beyond copying.
 * Those do not depend on the link (steps 1–2 and 5–9, the target's start), so another pair's are a better
 * guess than none: without them a first migration was predicted as its copy alone (67–97 % short on QEMU).
 * None when the cluster has no completed migration.
 */
export function clusterCosts(ms: ReadonlyArray<{ setupMs: number; switchoverFixedMs: number; finishedAt: string }>): ControlPlaneCosts {
  if (ms.length === 0) return {};
  const from = { origin: 'migrations' as const, measuredAt: ms.map((m) => m.finishedAt).sort().at(-1)! };
  const of = (what: string) => `no migration between these hosts yet: the median ${what} of the cluster's last ${ms.length} completed migration(s)`;
  return {
    setupMs: { ...from, value: Math.round(median(ms.map((m) => m.setupMs))), unit: 'ms', detail: of('time outside pre-copy and the pause') },
    switchoverFixedMs: { ...from, value: Math.round(median(ms.map((m) => m.switchoverFixedMs))), unit: 'ms', detail: of('pause beyond copying the last dirty bytes') },
  };
}

/**
 * What the first pass sends, as the model's memory: the memory that holds data when the agent can tell
 * (never-written pages travel as zero-page flags), never less than the working set nor 1 MiB, never more
 * than the memory; else all of it.
 */
export function bytesToSend(memoryBytes: number, guest: { residentBytes?: number; workingSetBytes: number }): number {
  if (guest.residentBytes === undefined) return memoryBytes;
  return Math.min(memoryBytes, Math.max(guest.residentBytes, guest.workingSetBytes, BYTES_PER_MIB));
}

const ageOf = (measuredAt: string, now: number) => Math.max(0, Math.round(now - Date.parse(measuredAt)));

/**
 * POST /api/v1/migrations/predict, and the prediction POST /api/v1/migrations records (docs/prediction.md):
 * the VM's dirty rate and working set from its agent, the link from the two hosts' last migration (else the
 * source agent's probe, else the configured assumption), the policy as the migration would get it, and
 * `predict` of @flexmig/migration-model: the model the sim driver runs.
 */
@Injectable()
export class PredictionService {
  private readonly settings: typeof defaults;
  /**
   * Host pair (sorted) → the link learnt from its last migration; `source → target` → the link probed that
   * way (the sink and the probe, or a driver's model); each with when it was read.
   */
  private readonly knownLinks = new Map<string, { inputs: LinkInputs; at: number }>();
  /** `source → target` → the probe under way: predictions asked at once share it (two would share the link). */
  private readonly probes = new Map<string, Promise<LinkInputs>>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly placer: PlacementService,
    private readonly clusterSettings: ClusterSettingsService,
    @Inject(SCHEDULER_CONFIG) config: SchedulerConfig,
  ) {
    this.settings = config.prediction ?? defaults;
  }

  /** The whole request: the VM, the target (chosen when none is given), the policy, then {@link predictFor}. */
  async predict(input: { vmId: string; targetHostId?: string; policy?: Partial<MigrationPolicy> }): Promise<MigrationPrediction> {
    const { vm, target, placement } = await vmAndTarget(this.bus, this.placer, input);
    const policy = await this.clusterSettings.policyFor(vm.clusterId, input.policy ?? {});
    return this.predictFor(vm, target, policy, placement && { chosen: placement.chosen, reason: placement.reason });
  }

  /** What a migration request records: its prediction if ready within PREDICTION_WAIT_MS, else why not (prediction-wait.ts). */
  recordedFor(vm: Vm, target: Host, policy: MigrationPolicy, placement: MigrationPrediction['placement']): Promise<RecordedPrediction> {
    return predictionWithin(this.predictFor(vm, target, policy, placement), this.settings.waitMs);
  }

  /** A prediction for a migration whose checks passed. */
  async predictFor(vm: Vm, target: Host, policy: MigrationPolicy, placement: MigrationPrediction['placement']): Promise<MigrationPrediction> {
    const [guest, link] = await Promise.all([this.dirtyRate(vm), this.link(vm.hostId, target)]);
    const now = Date.now();
    const memoryBytes = vm.memoryMiB * BYTES_PER_MIB;
    // a qemu agent switches over only when what is left copies within its budget (reserve and margin taken
    // off the limit, and the copy of what the guest dirties while QEMU stops it: switchover-decision.ts),
    // stricter than the limit less the reserve the sim driver's model uses (simModelDowntimeLimitMs). The agent
    // counts the guest's dirty rate as QEMU measures it then, slowed by any throttle; the model counts the rate
    // sampled now: as strict or stricter.
    const qemu = target.driver === 'qemu';
    const stopCopyMs = qemu ? qemuAgentStopCopyMs(guest.dirtyRateBytesPerSec, link.bandwidth.value) : 0;
    const modelLimitMs = qemu ? qemuAgentCopyBudgetMs(policy.downtimeLimitMs, stopCopyMs) : simModelDowntimeLimitMs(policy.downtimeLimitMs);
    const modelPolicy = { ...policy, downtimeLimitMs: modelLimitMs };
    const modelled = predict(
      {
        memoryBytes: bytesToSend(memoryBytes, guest),
        dirtyRateBytesPerSec: guest.dirtyRateBytesPerSec,
        workingSetBytes: guest.workingSetBytes,
        linkBandwidthBytesPerSec: link.bandwidth.value,
        ...(link.setupMs ? { setupMs: link.setupMs.value } : {}),
        ...(link.switchoverFixedMs ? { switchoverFixedMs: link.switchoverFixedMs.value } : {}),
      },
      modelPolicy,
    );
    // a lever's limit back in the policy's terms; one above the largest limit a policy accepts is no lever
    const policyLimitMs = (modelMs: number) => (qemu ? qemuAgentLimitForBudgetMs(modelMs, stopCopyMs) : simPolicyDowntimeLimitMs(modelMs));
    const answer = {
      ...modelled,
      levers: modelled.levers
        .map((l) => (l.policy.downtimeLimitMs === undefined ? l : { ...l, policy: { ...l.policy, downtimeLimitMs: policyLimitMs(l.policy.downtimeLimitMs) } }))
        .filter((l) => l.policy.downtimeLimitMs === undefined || l.policy.downtimeLimitMs <= MAX_DOWNTIME_LIMIT_MS),
    };
    const aged = (x: Omit<PredictionInput, 'ageMs'>): PredictionInput => ({ ...x, ageMs: x.measuredAt ? ageOf(x.measuredAt, now) : null });
    const sampled = (value: number, unit: PredictionInput['unit']): PredictionInput => ({
      value,
      unit,
      origin: guest.origin,
      measuredAt: guest.measuredAt,
      ageMs: ageOf(guest.measuredAt, now),
      detail: `${guest.detail} (agent of ${guest.hostId})`,
    });
    return {
      vmId: vm.id,
      sourceHostId: vm.hostId,
      targetHostId: target.id,
      placement,
      policy,
      predicted: answer.predicted,
      levers: answer.levers,
      inputs: {
        memoryBytes: { value: memoryBytes, unit: 'bytes', origin: 'vm', measuredAt: null, ageMs: null, detail: `VM ${vm.name}: ${vm.memoryMiB} MiB in inventory` },
        dirtyRateBytesPerSec: sampled(guest.dirtyRateBytesPerSec, 'bytes/s'),
        workingSetBytes: sampled(Math.min(guest.workingSetBytes, memoryBytes), 'bytes'),
        ...(guest.residentBytes !== undefined ? { residentBytes: sampled(guest.residentBytes, 'bytes') } : {}),
        bandwidthBytesPerSec: aged(link.bandwidth),
        ...(link.setupMs ? { setupMs: aged(link.setupMs) } : {}),
        ...(link.switchoverFixedMs ? { switchoverFixedMs: aged(link.switchoverFixedMs) } : {}),
      },
      predictedAt: new Date(now).toISOString(),
    };
  }

  private dirtyRate(vm: Vm) {
    return this.bus.request(SampleDirtyRate, { vmId: vm.id, maxAgeMs: this.settings.dirtyRateMaxAgeMs }, { params: { hostId: vm.hostId }, timeoutMs: dirtyRateTimeoutMs });
  }

  /**
   * The two hosts' last completed migration (either way): the link and the control plane's costs; else the
   * source's probe into the target's sink, else the assumption, for the link alone.
   */
  private async link(sourceHostId: string, target: Host): Promise<LinkInputs> {
    // a link learnt or probed is kept a while (its age is reported): one database read, or one probe, less per
    // request. A probe is kept only until a migration between the two hosts has measured their link.
    const pair = [sourceHostId, target.id].sort().join(' ');
    const fresh = (key: string) => {
      const k = this.knownLinks.get(key);
      return k && Date.now() - k.at < LINK_KEPT_MS ? k.inputs : undefined;
    };
    const known = fresh(pair);
    if (known) return known;
    const learnt = await this.learntLink(sourceHostId, target);
    if (learnt.pair) {
      this.knownLinks.set(pair, { inputs: learnt.pair, at: Date.now() });
      return learnt.pair;
    }
    const way = `${sourceHostId} → ${target.id}`;
    const probed = fresh(way);
    if (probed) return { ...probed, ...learnt.costs };
    let probing = this.probes.get(way);
    if (!probing) {
      probing = this.probedLink(sourceHostId, target).finally(() => this.probes.delete(way));
      this.probes.set(way, probing);
    }
    const inputs = await probing;
    // an assumption is not kept: the next prediction probes again
    if (inputs.bandwidth.origin !== 'assumed') this.knownLinks.set(way, { inputs, at: Date.now() });
    return { ...inputs, ...learnt.costs };
  }

  /**
   * From the newest completed migrations, in one query: the pair's last one (either way), else the control
   * plane's costs of the cluster's last ones (`clusterCosts`): those do not depend on the link. Each one's
   * figures as it stored them when it completed; the saga only of a row completed before they were stored.
   */
  private async learntLink(sourceHostId: string, target: Host): Promise<{ pair?: LinkInputs; costs: ControlPlaneCosts }> {
    const rows = await runPrepared<LearntRow>(this.db, LEARNT_LINK, [sourceHostId, target.id, target.clusterId]);
    const measured = rows.flatMap((r) => {
      const m = r.saga === null ? r.measured : measuredByMigration(typeof r.saga === 'string' ? (JSON.parse(r.saga) as SagaState) : r.saga, r.memory_mib, r.cap_mibps ?? undefined);
      return m ? [{ ...m, id: r.id, finishedAt: new Date(r.finished_at).toISOString(), sourceHostId: r.source_host_id, samePair: r.same_pair, memoryMiB: r.memory_mib }] : [];
    });
    const pair = measured.filter((m) => m.samePair).sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
    if (!pair) return { costs: clusterCosts(measured.filter((m) => !m.samePair)) };
    const from = { origin: 'migrations' as const, measuredAt: pair.finishedAt };
    const which = `migration ${pair.id} (${pair.sourceHostId} → ${pair.sourceHostId === sourceHostId ? target.id : sourceHostId})`;
    const costs: ControlPlaneCosts = {
      setupMs: { ...from, value: Math.round(pair.setupMs), unit: 'ms', detail: `${which}: its total less pre-copy and the pause` },
      switchoverFixedMs: { ...from, value: Math.round(pair.switchoverFixedMs), unit: 'ms', detail: `${which}: its pause less copying the last dirty bytes` },
    };
    // its first pass sent too little to measure the link: its costs, with the link probed
    if (pair.bytesPerSec === undefined) return { costs };
    const bandwidth = { ...from, value: pair.bytesPerSec, unit: 'bytes/s' as const, detail: `${which}: its stream while its first pass sent (${pair.memoryMiB} MiB of memory, a pass of ${pair.passMs} ms)` };
    return { pair: { bandwidth, ...costs }, costs: {} };
  }

  /**
   * The target opens a one-shot sink (its driver's; none for sim, whose probe answers its model link), then
   * the source probes towards it; either failing, the configured assumption, saying which failed and why.
   */
  private async probedLink(sourceHostId: string, target: Host): Promise<LinkInputs> {
    let step = `the target's link sink (agent.${target.id}.link.sink)`;
    try {
      const sink = await this.bus.request(OpenLinkSink, { sourceHostId }, { params: { hostId: target.id } });
      step = `the probe of ${sourceHostId} (agent.${sourceHostId}.link.probe)`;
      const p = await this.bus.request(
        ProbeLink,
        { targetHostId: target.id, targetAddress: sink.address ?? target.migrationAddress },
        { params: { hostId: sourceHostId }, timeoutMs: probeTimeoutMs },
      );
      return { bandwidth: { value: p.bandwidthBytesPerSec, unit: 'bytes/s', origin: p.origin, measuredAt: p.measuredAt, detail: p.detail } };
    } catch (e) {
      const mibps = this.settings.assumedBandwidthMiBps;
      return {
        bandwidth: {
          value: mibps * BYTES_PER_MIB,
          unit: 'bytes/s',
          origin: 'assumed',
          measuredAt: null,
          // the assumption first: the agent's error, however long, is what is cut
          detail: `PREDICTION_ASSUMED_BANDWIDTH_MIBPS = ${mibps} MiB/s: no migration between ${sourceHostId} and ${target.id} has completed yet and ${step} failed: ${(e as Error).message}`.slice(0, detailChars),
        },
      };
    }
  }
}
