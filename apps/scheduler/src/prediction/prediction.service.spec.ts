import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { ErrorCode, FlexmigError, type Host, MigrationPolicySchema, MigrationPredictionSchema, OpenLinkSink, ProbeLink, SampleDirtyRate, type Vm } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import type { SchedulerConfig } from '../config';
import type { PlacementService } from '../placement/placement.service';
import type { ClusterSettingsService } from '../settings/cluster-settings.service';
import { MAX_DOWNTIME_LIMIT_MS, predict, qemuAgentCopyBudgetMs, qemuAgentStopCopyMs, simModelDowntimeLimitMs, SIM_SWITCHOVER_RESERVE_MS } from '@flexmig/migration-model';
import { createSaga } from '@flexmig/saga';
import { measuredByMigration } from './measured';
import { PredictionService, bytesToSend, clusterCosts } from './prediction.service';

const MiB = 1024 * 1024;
type Call = { subject: string; hostId: string | undefined; body: Record<string, unknown> };
type Answer = (body: Record<string, unknown>) => unknown;

/**
 * The link's part of a prediction with the agents and the database faked: no migration between the hosts
 * (the database has none), so the target's sink and the source's probe are asked, in that order.
 */
function setUp(
  answers: { sink: Answer; probe: Answer },
  guest: { dirtyRateBytesPerSec?: number; workingSetBytes?: number } = {},
  targetDriver?: Host['driver'],
  memoryMiB = 512,
  learnt: unknown[] = [],
) {
  const calls: Call[] = [];
  const reads: { name?: string; values: unknown[] }[] = [];
  const bus = {
    request: async (c: { subject: string }, body: Record<string, unknown>, opts: { params?: { hostId?: string } } = {}) => {
      calls.push({ subject: c.subject, hostId: opts.params?.hostId, body });
      if (c.subject === SampleDirtyRate.subject) {
        return { vmId: body.vmId, hostId: 'src', dirtyRateBytesPerSec: 0, workingSetBytes: MiB, memoryBytes: memoryMiB * MiB, origin: 'model', measuredAt: new Date().toISOString(), detail: 'model', ...guest };
      }
      if (c.subject === OpenLinkSink.subject) return answers.sink(body);
      if (c.subject === ProbeLink.subject) return answers.probe(body);
      throw new Error(`unexpected request ${c.subject}`);
    },
  } as unknown as NatsBus;
  // the learnt-link read (a prepared statement on the pool): `learnt`, none by default (no completed migration yet)
  const query = async (q: { name?: string; values: unknown[] }) => (reads.push(q), { rows: learnt });
  const db = { connection: { driver: { master: { query } } } } as unknown as DataSource;
  const service = new PredictionService(db, bus, {} as PlacementService, {} as ClusterSettingsService, { prediction: { assumedBandwidthMiBps: 1250, dirtyRateMaxAgeMs: 600_000, waitMs: 250 } } as SchedulerConfig);
  const vm = { id: randomUUID(), name: 'vm', hostId: 'src', clusterId: randomUUID(), memoryMiB } as Vm;
  const target = { id: 'dst', clusterId: vm.clusterId, migrationAddress: '10.0.0.2:49152', ...(targetDriver ? { driver: targetDriver } : {}) } as Host;
  const prediction = async () => MigrationPredictionSchema.parse(await service.predictFor(vm, target, MigrationPolicySchema.parse({}), null));
  const predict = async () => (await prediction()).inputs.bandwidthBytesPerSec;
  const linkCalls = () => calls.filter((c) => c.subject !== SampleDirtyRate.subject).map((c) => `${c.subject} @${c.hostId}`);
  return { calls, reads, predict, prediction, linkCalls, vm };
}

const probed = (body: Record<string, unknown>) => ({ bandwidthBytesPerSec: 600 * MiB, origin: 'probe', measuredAt: new Date().toISOString(), detail: `probe QEMU towards ${String(body.targetAddress)}` });

describe('PredictionService: the link between two hosts no migration has measured yet', () => {
  it("given a target with a sink, then the target opens it first and the source probes towards the sink's address", async () => {
    const t = setUp({ sink: () => ({ address: '10.0.0.2:47310', expiresAt: new Date().toISOString(), detail: 'sink' }), probe: probed });
    const bw = await t.predict();
    expect(t.linkCalls()).toEqual(['agent.{hostId}.link.sink @dst', 'agent.{hostId}.link.probe @src']);
    expect(t.calls.find((c) => c.subject === OpenLinkSink.subject)!.body).toEqual({ sourceHostId: 'src' });
    expect(t.calls.find((c) => c.subject === ProbeLink.subject)!.body).toEqual({ targetHostId: 'dst', targetAddress: '10.0.0.2:47310' });
    expect(bw).toMatchObject({ origin: 'probe', value: 600 * MiB, detail: 'probe QEMU towards 10.0.0.2:47310' });
  });

  it("given a target that needs no sink (sim), then the source probes towards the target's migration address", async () => {
    const t = setUp({
      sink: () => ({ address: null, expiresAt: null, detail: 'no sink' }),
      probe: () => ({ bandwidthBytesPerSec: 1250 * MiB, origin: 'model', measuredAt: new Date().toISOString(), detail: 'model link' }),
    });
    expect(await t.predict()).toMatchObject({ origin: 'model', value: 1250 * MiB });
    expect(t.calls.find((c) => c.subject === ProbeLink.subject)!.body).toEqual({ targetHostId: 'dst', targetAddress: '10.0.0.2:49152' });
  });

  it('given a probe, then the next prediction within a minute uses it again without probing', async () => {
    const t = setUp({ sink: () => ({ address: '10.0.0.2:47310', expiresAt: new Date().toISOString(), detail: 'sink' }), probe: probed });
    const first = await t.predict();
    const second = await t.predict();
    expect(second).toMatchObject({ origin: 'probe', value: first.value, measuredAt: first.measuredAt });
    expect(t.linkCalls().filter((c) => c.includes('link.probe'))).toHaveLength(1);
  });

  it('given two predictions at once, then one sink and one probe serve both', async () => {
    const t = setUp({ sink: () => ({ address: '10.0.0.2:47310', expiresAt: new Date().toISOString(), detail: 'sink' }), probe: probed });
    const [a, b] = await Promise.all([t.predict(), t.predict()]);
    expect(a.value).toBe(b.value);
    expect(t.linkCalls()).toEqual(['agent.{hostId}.link.sink @dst', 'agent.{hostId}.link.probe @src']);
  });

  it('given the sink failing, then no probe is asked and the assumption says the sink failed and why', async () => {
    const t = setUp({
      sink: () => {
        throw new FlexmigError(ErrorCode.Conflict, 'every port of QEMU_MIGRATION_PORT_RANGE is in use');
      },
      probe: probed,
    });
    const bw = await t.predict();
    expect(bw).toMatchObject({ origin: 'assumed', value: 1250 * MiB, measuredAt: null });
    expect(bw.detail).toMatch(/^PREDICTION_ASSUMED_BANDWIDTH_MIBPS = 1250 MiB\/s: .*the target's link sink \(agent\.dst\.link\.sink\) failed: every port/);
    expect(t.linkCalls()).toEqual(['agent.{hostId}.link.sink @dst']);
  });

  it('given the probe failing, then the assumption says the probe failed and why (cut to fit), and the next prediction probes again', async () => {
    const t = setUp({
      sink: () => ({ address: '10.0.0.2:47310', expiresAt: new Date().toISOString(), detail: 'sink' }),
      probe: () => {
        throw new FlexmigError(ErrorCode.AgentFailed, `QEMU's stream failed: Connection refused ${'x'.repeat(1000)}`);
      },
    });
    const bw = await t.predict();
    expect(bw).toMatchObject({ origin: 'assumed', value: 1250 * MiB });
    expect(bw.detail).toMatch(/the probe of src \(agent\.src\.link\.probe\) failed: QEMU's stream failed: Connection refused/);
    expect(bw.detail.length).toBeLessThanOrEqual(500);
    await t.predict();
    expect(t.linkCalls().filter((c) => c.includes('link.probe'))).toHaveLength(2);
  });
});

describe("PredictionService: the link learnt from the pair's last completed migration", () => {
  const noProbe = { sink: () => Promise.reject(new Error('no sink expected')), probe: () => Promise.reject(new Error('no probe expected')) };
  const row = (r: Record<string, unknown>) => ({ id: randomUUID(), memory_mib: 1024, cap_mibps: null, finished_at: new Date(), source_host_id: 'src', same_pair: true, ...r });
  /** A completed migration whose first pass sent 1 GiB in 2 s at 600 MiB/s as its agent measured it. */
  const completedSaga = () => {
    const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
    const s = createSaga({ migrationId: randomUUID(), vmId: randomUUID(), sourceHostId: 'src', targetHostId: 'dst' }, T0);
    Object.assign(s, { startedAt: T0, endedAt: T0 + 5_000 });
    Object.assign(s.steps[2]!, { startedAt: T0 + 1_000, completedAt: T0 + 3_000, result: { stats: { bytesTransferred: 1024 * MiB, bandwidthBytesPerSec: 600 * MiB } } });
    Object.assign(s.steps[3]!, { startedAt: T0 + 3_000, completedAt: T0 + 3_500 });
    s.steps[4]!.result = { pausedAt: new Date(T0 + 4_000).toISOString() };
    s.steps[6]!.result = { resumedAt: new Date(T0 + 4_040).toISOString() };
    return s;
  };

  it('given the figures it stored when it completed, then those, without its saga, and no probe', async () => {
    const stored = { bytesPerSec: 700 * MiB, passMs: 1_500, switchoverFixedMs: 30, setupMs: 400 };
    const t = setUp(noProbe, {}, undefined, 512, [row({ measured: stored, saga: null })]);
    const p = await t.prediction();
    expect(p.inputs.bandwidthBytesPerSec).toMatchObject({ origin: 'migrations', value: 700 * MiB });
    expect(p.inputs.setupMs).toMatchObject({ origin: 'migrations', value: 400 });
    expect(p.inputs.switchoverFixedMs).toMatchObject({ origin: 'migrations', value: 30 });
    expect(t.linkCalls()).toEqual([]);
    expect(t.reads.map((r) => [r.name, r.values])).toEqual([['scheduler_learnt_link', ['src', 'dst', t.vm.clusterId]]]);
  });

  it('given a row completed before figures were stored (none), then its saga gives them, as it did', async () => {
    const saga = completedSaga();
    const t = setUp(noProbe, {}, undefined, 512, [row({ measured: null, saga })]);
    const p = await t.prediction();
    const figures = measuredByMigration(saga, 1024)!;
    expect(figures.bytesPerSec).toBe(600 * MiB);
    expect(p.inputs.bandwidthBytesPerSec).toMatchObject({ origin: 'migrations', value: 600 * MiB });
    expect(p.inputs.setupMs).toMatchObject({ value: Math.round(figures.setupMs) });
    expect(t.linkCalls()).toEqual([]);
  });

  it('given a migration that stored that it measured nothing (JSON null), then the link is probed', async () => {
    const t = setUp({ sink: () => ({ address: null, expiresAt: null, detail: 'no sink' }), probe: probed }, {}, undefined, 512, [row({ measured: null, saga: null })]);
    expect(await t.predict()).toMatchObject({ origin: 'probe', value: 600 * MiB });
  });
});

describe("PredictionService: a qemu target, on the agent's own switchover budget", () => {
  const sink = () => ({ address: '10.0.0.2:47310', expiresAt: new Date().toISOString(), detail: 'sink' });
  const policy = MigrationPolicySchema.parse({});
  const inputs = (dirtyRateBytesPerSec: number) => ({ memoryBytes: 512 * MiB, dirtyRateBytesPerSec, workingSetBytes: 110 * MiB, linkBandwidthBytesPerSec: 600 * MiB });

  it('given a dirtying guest, then the model switches over on the limit less the reserve, the margin and the copy of what the guest dirties during the stop', async () => {
    const dirty = 160 * MiB;
    const t = setUp({ sink, probe: probed }, { dirtyRateBytesPerSec: dirty, workingSetBytes: 110 * MiB }, 'qemu');
    const got = await t.prediction();
    // 160 MiB/s for 250 ms at 600 MiB/s: 66.7 ms of the 220 ms budget (300 less 25, at 0.8)
    const budget = qemuAgentCopyBudgetMs(policy.downtimeLimitMs, qemuAgentStopCopyMs(dirty, 600 * MiB));
    expect(budget).toBe(153);
    expect(got.predicted).toEqual(predict(inputs(dirty), { ...policy, downtimeLimitMs: budget }).predicted);
    // the premise: without the stop margin, the 110 MiB working set (183 ms at 600 MiB/s) fits 220 ms after
    // the first pass; with it, it takes another pass
    expect(got.predicted).not.toEqual(predict(inputs(dirty), { ...policy, downtimeLimitMs: qemuAgentCopyBudgetMs(policy.downtimeLimitMs) }).predicted);
  });

  it('given a guest that dirties nothing, then the budget is the limit less the reserve at the margin, as before', async () => {
    const t = setUp({ sink, probe: probed }, { workingSetBytes: 110 * MiB }, 'qemu');
    expect((await t.prediction()).predicted).toEqual(predict(inputs(0), { ...policy, downtimeLimitMs: qemuAgentCopyBudgetMs(policy.downtimeLimitMs) }).predicted);
  });
});

describe("PredictionService: a sim target, on the sim driver's model limit", () => {
  const sink = () => ({ address: null, expiresAt: null, detail: 'no sink' });
  const policy = MigrationPolicySchema.parse({});
  const inputs = { memoryBytes: 512 * MiB, dirtyRateBytesPerSec: 300 * MiB, workingSetBytes: 170 * MiB, linkBandwidthBytesPerSec: 600 * MiB };

  it(`given a guest whose first pass leaves 283 ms to copy, then the model switches over on the limit less ${SIM_SWITCHOVER_RESERVE_MS} ms, after another pass`, async () => {
    const t = setUp({ sink, probe: probed }, { dirtyRateBytesPerSec: inputs.dirtyRateBytesPerSec, workingSetBytes: inputs.workingSetBytes }, 'sim');
    const got = await t.prediction();
    const reserved = predict(inputs, { ...policy, downtimeLimitMs: policy.downtimeLimitMs - SIM_SWITCHOVER_RESERVE_MS }).predicted;
    expect(got.predicted).toEqual(reserved);
    expect(got.predicted.downtimeMs).toBeLessThanOrEqual(policy.downtimeLimitMs - SIM_SWITCHOVER_RESERVE_MS);
    // the premise: on the limit itself, the model would switch over a pass earlier
    const onTheLimit = predict(inputs, policy).predicted;
    expect(onTheLimit.passes).toBeLessThan(reserved.passes);
    expect(onTheLimit.downtimeMs).toBeGreaterThan(policy.downtimeLimitMs - SIM_SWITCHOVER_RESERVE_MS);
  });
});

describe('clusterCosts: the control plane of two hosts that never migrated between them', () => {
  it("given the cluster's last migrations, then each cost is their median, dated by the newest, and says where it comes from", () => {
    const c = clusterCosts([
      { setupMs: 900, switchoverFixedMs: 40, finishedAt: '2026-12-01T03:00:00.000Z' },
      { setupMs: 1500, switchoverFixedMs: 20, finishedAt: '2026-12-01T03:02:00.000Z' },
      { setupMs: 1100, switchoverFixedMs: 90, finishedAt: '2026-12-01T03:01:00.000Z' },
    ]);
    expect(c.setupMs).toMatchObject({ value: 1100, unit: 'ms', origin: 'migrations', measuredAt: '2026-12-01T03:02:00.000Z' });
    expect(c.switchoverFixedMs).toMatchObject({ value: 40, unit: 'ms', origin: 'migrations' });
    expect(c.setupMs!.detail).toMatch(/no migration between these hosts yet.*last 3 completed/);
  });

  it('given an even count, then the median is the mean of the middle two', () => {
    const c = clusterCosts([
      { setupMs: 100, switchoverFixedMs: 10, finishedAt: '2026-12-01T03:00:00.000Z' },
      { setupMs: 300, switchoverFixedMs: 30, finishedAt: '2026-12-01T03:00:00.000Z' },
    ]);
    expect(c.setupMs!.value).toBe(200);
    expect(c.switchoverFixedMs!.value).toBe(20);
  });

  it('given a cluster with no completed migration, then there are none: the model counts no control plane', () => {
    expect(clusterCosts([])).toEqual({});
  });
});

describe('bytesToSend: what the first pass of a migration sends', () => {
  it('given the resident memory, then that, never below the working set nor 1 MiB, never above the memory', () => {
    expect(bytesToSend(2048 * MiB, { residentBytes: 12 * MiB, workingSetBytes: 1 * MiB })).toBe(12 * MiB);
    expect(bytesToSend(2048 * MiB, { residentBytes: 100 * MiB, workingSetBytes: 256 * MiB })).toBe(256 * MiB);
    expect(bytesToSend(2048 * MiB, { residentBytes: 0, workingSetBytes: 0 })).toBe(1 * MiB);
    expect(bytesToSend(512 * MiB, { residentBytes: 600 * MiB, workingSetBytes: 0 })).toBe(512 * MiB);
  });

  it('given no resident figure (sim), then all of the memory', () => {
    expect(bytesToSend(512 * MiB, { workingSetBytes: 110 * MiB })).toBe(512 * MiB);
  });
});

describe('PredictionService: a lever whose limit, in the policy\'s terms, is above the largest a policy accepts', () => {
  const sink = () => ({ address: null, expiresAt: null, detail: 'no sink' });
  const policy = MigrationPolicySchema.parse({});
  const memoryMiB = 4096;
  const workingSetBytes = 1024 * MiB;
  /** A link so slow that the model converges only at `modelLimitMs`: a guest dirtying faster than it sends repeats its working set. */
  const linkFor = (modelLimitMs: number) => Math.round((workingSetBytes * 1.1 * 1000) / modelLimitMs);
  const slowProbe = (bandwidthBytesPerSec: number) => (body: Record<string, unknown>) => ({ ...probed(body), bandwidthBytesPerSec });

  it.each([
    ['sim', MAX_DOWNTIME_LIMIT_MS - 10],
    ['qemu', 50_000],
  ] as const)('given a %s target converging only at a model limit of about %i ms, then the answer offers no downtime-limit lever, instead of one no policy accepts', async (driver, modelLimitMs) => {
    const bandwidth = linkFor(modelLimitMs);
    const dirty = 2 * bandwidth;
    // the premise: in the model's terms the lever converges within the largest limit; in the policy's it is above it
    const inputs = { memoryBytes: memoryMiB * MiB, dirtyRateBytesPerSec: dirty, workingSetBytes, linkBandwidthBytesPerSec: bandwidth };
    const modelPolicy = { ...policy, downtimeLimitMs: driver === 'sim' ? simModelDowntimeLimitMs(policy.downtimeLimitMs) : qemuAgentCopyBudgetMs(policy.downtimeLimitMs, qemuAgentStopCopyMs(dirty, bandwidth)) };
    const inModelTerms = predict(inputs, modelPolicy).levers.find((l) => l.lever === 'downtime-limit');
    expect(inModelTerms?.policy.downtimeLimitMs).toBeLessThanOrEqual(MAX_DOWNTIME_LIMIT_MS);
    const t = setUp({ sink, probe: slowProbe(bandwidth) }, { dirtyRateBytesPerSec: dirty, workingSetBytes }, driver, memoryMiB);
    const got = await t.prediction();
    expect(got.predicted.outcome).not.toBe('converged');
    expect(got.levers.map((l) => l.lever)).not.toContain('downtime-limit');
  });
});
