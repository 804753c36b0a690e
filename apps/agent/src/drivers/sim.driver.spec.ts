import { randomUUID } from 'node:crypto';
import { FlexmigError, MigrationPolicyInput, MigrationPolicySchema, StepCommand, VmSpec, stepName } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { analyticPrecopy, QEMU_DEFAULT_DOWNTIME_LIMIT_MS, resolveMigrationPolicy, SIM_SWITCHOVER_RESERVE_MS, simModelDowntimeLimitMs, simulateWithPolicy } from '@flexmig/migration-model';
import { ProgressSink } from './driver';
import { SimDriver, SimDriverOptions } from './sim.driver';
import { VirtualClock } from './sim-clock';

const MiB = 1024 * 1024;
type Progress = Parameters<ProgressSink>[0];

/** Figures are compared as the brief asks: within 5%. */
const within5pct = (actual: number, expected: number) => {
  if (expected === 0) return expect(actual).toBeCloseTo(0, 6);
  expect(Math.abs(actual - expected) / expected).toBeLessThanOrEqual(0.05);
};

function makeDriver(o: Partial<SimDriverOptions> = {}) {
  const clock = new VirtualClock();
  const driver = new SimDriver({
    hostCpu: simulatedHostCpu('IvyBridge'),
    memoryMiB: 262_144,
    vcpus: 64,
    bandwidthMiBps: 1250,
    timeScale: 1, // on the virtual clock: elapsed clock ms = simulated ms
    defaultDirtyRateMiBps: 200,
    defaultWorkingSetMiB: 256,
    clock,
    ...o,
  });
  return { driver, clock };
}

function vmSpec(memoryMiB: number, workload?: VmSpec['workload']): VmSpec {
  return { id: randomUUID(), name: 'vm', memoryMiB, vcpus: 2, cpuBaseline: 'IvyBridge', ...(workload ? { workload } : {}) };
}

function command(step: 3 | 4 | 5 | 6, vm: VmSpec, migrationId: string, policy: MigrationPolicyInput = {}): StepCommand {
  return {
    migrationId,
    step,
    stepName: stepName(step),
    attempt: 1,
    role: 'source',
    vm,
    sourceHostId: 'src',
    targetHostId: 'dst',
    policy: MigrationPolicySchema.parse(policy),
  };
}

/** Steps 3 to 6 on the source, as the saga sends them; returns the stats and the simulated time they took. */
async function migrate(driver: SimDriver, clock: VirtualClock, vm: VmSpec, policy: MigrationPolicyInput = {}) {
  const migrationId = randomUUID();
  const reports: Array<Progress & { atMs: number }> = [];
  const sink: ProgressSink = (p) => reports.push({ ...p, atMs: clock.now() });
  await driver.startVm(vm);
  const t0 = clock.now();
  const s3 = await driver.transferMemory(command(3, vm, migrationId, policy), sink);
  const s4 = await driver.syncMemory(command(4, vm, migrationId, policy), sink);
  const syncEndMs = clock.now() - t0;
  await driver.pauseSource(vm.id);
  const s6 = await driver.transferState(command(6, vm, migrationId, policy));
  return { migrationId, s3, s4, s6, totalMs: clock.now() - t0, syncEndMs, reports };
}

interface Case {
  name: string;
  memoryMiB: number;
  dirtyMiBps: number;
  workingSetMiB?: number;
  linkMiBps: number;
  policy: MigrationPolicyInput;
}

const cases: Case[] = [
  // README's worked example: r = 0.5, six passes (auto-converge off: every pass is a borderline "hit")
  { name: '1 GiB at 100 MiB/s dirtying 50 MiB/s', memoryMiB: 1024, dirtyMiBps: 50, linkMiBps: 100, policy: { autoConverge: false } },
  { name: '4 GiB idle-ish with a small working set (converges at pass 1)', memoryMiB: 4096, dirtyMiBps: 200, workingSetMiB: 256, linkMiBps: 1250, policy: {} },
  { name: '8 GiB busy all over, r = 0.32', memoryMiB: 8192, dirtyMiBps: 400, linkMiBps: 1250, policy: {} },
  { name: '2 GiB under a 500 MiB/s cap on a 1000 MiB/s link', memoryMiB: 2048, dirtyMiBps: 100, workingSetMiB: 1024, linkMiBps: 1000, policy: { bandwidthMiBps: 500, downtimeLimitMs: 100 } },
  { name: '16 GiB, r = 0.48, 500 ms budget', memoryMiB: 16_384, dirtyMiBps: 600, linkMiBps: 1250, policy: { downtimeLimitMs: 500, autoConverge: false } },
  { name: 'idle 512 MiB guest', memoryMiB: 512, dirtyMiBps: 0, linkMiBps: 1250, policy: {} },
];

function analyticFor(c: Case) {
  const policy = MigrationPolicySchema.parse(c.policy);
  const B = Math.min(c.linkMiBps, policy.bandwidthMiBps ?? Infinity) * MiB;
  return analyticPrecopy({
    memoryBytes: c.memoryMiB * MiB,
    dirtyRateBytesPerSec: c.dirtyMiBps * MiB,
    workingSetBytes: (c.workingSetMiB ?? c.memoryMiB) * MiB,
    bandwidthBytesPerSec: B,
    switchoverBandwidthBytesPerSec: c.linkMiBps * MiB,
    downtimeLimitMs: simModelDowntimeLimitMs(policy.downtimeLimitMs),
  });
}

describe('SimDriver on the pre-copy model', () => {
  describe.each(cases)('agrees with analyticPrecopy: $name', (c) => {
    const expected = analyticFor(c);
    const workload = { dirtyRateMiBps: c.dirtyMiBps, ...(c.workingSetMiB !== undefined ? { workingSetMiB: c.workingSetMiB } : {}) };

    it('in scaled time (virtual clock, timeScale 1): time, downtime, bytes and passes', async () => {
      expect(expected.outcome).toBe('converged');
      const { driver, clock } = makeDriver({ bandwidthMiBps: c.linkMiBps });
      const r = await migrate(driver, clock, vmSpec(c.memoryMiB, workload), c.policy);
      within5pct(r.totalMs, expected.totalTimeMs);
      within5pct(r.syncEndMs, expected.precopyTimeMs);
      within5pct(r.s6.downtimeMs!, expected.downtimeMs);
      within5pct(r.s6.bytesTransferred, expected.bytesTransferred);
      expect(r.s6.passes).toBe(expected.passes);
      expect(r.s3.passes).toBe(1);
      expect(r.s3.bytesTransferred).toBe(c.memoryMiB * MiB);
      expect(r.s4.passes).toBe(expected.passes);
      within5pct(r.s4.remainingBytes, expected.remainingBytes);
      expect(r.s6.throttlePct).toBe(0);
    });

    it('instantly (timeScale 0): the same figures', async () => {
      const { driver, clock } = makeDriver({ bandwidthMiBps: c.linkMiBps, timeScale: 0 });
      const r = await migrate(driver, clock, vmSpec(c.memoryMiB, workload), c.policy);
      expect(r.totalMs).toBe(0);
      expect(r.s6.passes).toBe(expected.passes);
      within5pct(r.s6.downtimeMs!, expected.downtimeMs);
      within5pct(r.s6.bytesTransferred, expected.bytesTransferred);
    });
  });

  it('waits timeScale real ms per simulated ms', async () => {
    const c = cases[0]!;
    const { driver, clock } = makeDriver({ bandwidthMiBps: c.linkMiBps, timeScale: 0.1 });
    const r = await migrate(driver, clock, vmSpec(c.memoryMiB, { dirtyRateMiBps: c.dirtyMiBps }), c.policy);
    within5pct(r.totalMs, analyticFor(c).totalTimeMs * 0.1);
  });

  it('reports progress at least once a second of real time and at each pass end, with the model figures', async () => {
    const { driver, clock } = makeDriver({ bandwidthMiBps: 100 });
    const r = await migrate(driver, clock, vmSpec(1024, { dirtyRateMiBps: 50 }), { autoConverge: false });
    expect(r.reports.length).toBeGreaterThanOrEqual(Math.floor(r.syncEndMs / 1000));
    let prev = 0;
    for (const p of r.reports) {
      expect(p.atMs - prev).toBeLessThanOrEqual(1000);
      prev = p.atMs;
      expect(p.totalBytes).toBe(1024 * MiB);
      expect(p.bandwidthBytesPerSec).toBe(100 * MiB);
      expect(p.percent).toBeGreaterThanOrEqual(0);
      expect(p.percent).toBeLessThanOrEqual(100);
    }
    expect(Math.max(...clock.sleeps)).toBeLessThanOrEqual(250);
    // every pass shows up (six for this guest, README's worked example), with its remaining and QEMU's expected downtime
    expect(new Set(r.reports.map((p) => p.pass))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    const last = r.reports.at(-1)!;
    expect(last.remainingBytes).toBeCloseTo(r.s4.remainingBytes, 0);
    expect(last.expectedDowntimeMs).toBeLessThanOrEqual(300);
    expect(last.dirtyRateBytesPerSec).toBe(50 * MiB);
    expect(last.throttlePct).toBe(0);
  });

  it('takes proportionally longer for a bigger VM', async () => {
    const run = async (memoryMiB: number) => {
      const { driver, clock } = makeDriver();
      return (await migrate(driver, clock, vmSpec(memoryMiB, { dirtyRateMiBps: 300 }))).totalMs;
    };
    const [small, big] = [await run(4096), await run(8192)];
    expect(big / small).toBeGreaterThan(1.9);
    expect(big / small).toBeLessThan(2.1);
  });

  it('uses the driver defaults for a VM without a workload', async () => {
    const { driver, clock } = makeDriver({ defaultDirtyRateMiBps: 200, defaultWorkingSetMiB: 256 });
    const r = await migrate(driver, clock, vmSpec(4096));
    const expected = analyticPrecopy({ memoryBytes: 4096 * MiB, dirtyRateBytesPerSec: 200 * MiB, workingSetBytes: 256 * MiB, bandwidthBytesPerSec: 1250 * MiB });
    expect(r.s6.passes).toBe(expected.passes);
    within5pct(r.totalMs, expected.totalTimeMs);
  });

  it('honours the bandwidth cap of the policy for the passes, not for the switchover', async () => {
    const { driver, clock } = makeDriver({ bandwidthMiBps: 1250 });
    const capped = await migrate(driver, clock, vmSpec(2048, { dirtyRateMiBps: 20 }), { bandwidthMiBps: 100 });
    const uncapped = await migrate(makeDriver().driver, new VirtualClock(), vmSpec(2048, { dirtyRateMiBps: 20 }), {});
    expect(capped.reports.every((p) => p.bandwidthBytesPerSec === 100 * MiB)).toBe(true);
    const expected = analyticPrecopy({
      memoryBytes: 2048 * MiB,
      dirtyRateBytesPerSec: 20 * MiB,
      bandwidthBytesPerSec: 100 * MiB,
      switchoverBandwidthBytesPerSec: 1250 * MiB,
    });
    within5pct(capped.totalMs, expected.totalTimeMs);
    within5pct(capped.s6.downtimeMs!, expected.downtimeMs);
    expect(capped.totalMs).toBeGreaterThan(20_480); // pass 1 alone: 2 GiB at 100 MiB/s
    expect(capped.totalMs).toBeGreaterThan(5 * uncapped.totalMs);
    expect(uncapped.s6.passes).toBeLessThanOrEqual(capped.s6.passes);
  });

  it(`switches over with ${SIM_SWITCHOVER_RESERVE_MS} ms of the limit left for the saga's path from the pause to the resume`, async () => {
    // after the first pass 287 MiB are left: 289 ms at 1000 MiB/s, within 300 ms but not within 275
    const c: Case = { name: 'reserve', memoryMiB: 1024, dirtyMiBps: 280, linkMiBps: 1000, policy: {} };
    const onTheLimit = analyticPrecopy({
      memoryBytes: 1024 * MiB,
      dirtyRateBytesPerSec: 280 * MiB,
      workingSetBytes: 1024 * MiB,
      bandwidthBytesPerSec: 1000 * MiB,
      downtimeLimitMs: QEMU_DEFAULT_DOWNTIME_LIMIT_MS,
    });
    const expected = analyticFor(c);
    expect([onTheLimit.passes, expected.passes]).toEqual([1, 2]);
    expect(onTheLimit.downtimeMs).toBeGreaterThan(QEMU_DEFAULT_DOWNTIME_LIMIT_MS - SIM_SWITCHOVER_RESERVE_MS);

    const { driver, clock } = makeDriver({ bandwidthMiBps: c.linkMiBps });
    const r = await migrate(driver, clock, vmSpec(1024, { dirtyRateMiBps: 280 }), c.policy);
    expect(r.s6.passes).toBe(2);
    within5pct(r.s6.downtimeMs!, expected.downtimeMs);
    expect(r.s6.downtimeMs!).toBeLessThanOrEqual(QEMU_DEFAULT_DOWNTIME_LIMIT_MS - SIM_SWITCHOVER_RESERVE_MS);
  });

  describe('a guest that dirties memory faster than the link (qemu-migration.md §9: 99 MiB at 1 GiB/s on 128 MiB/s)', () => {
    const guest = { dirtyRateMiBps: 1024, workingSetMiB: 99 };

    it('converges with auto-converge, as simulateWithPolicy predicts', async () => {
      const { driver, clock } = makeDriver({ bandwidthMiBps: 128 });
      const vm = vmSpec(1024, guest);
      const r = await migrate(driver, clock, vm, { autoConverge: true });
      const expected = simulateWithPolicy(
        { memoryBytes: 1024 * MiB, dirtyRateBytesPerSec: 1024 * MiB, workingSetBytes: 99 * MiB, bandwidthBytesPerSec: 128 * MiB },
        resolveMigrationPolicy({ memoryBytes: 1024 * MiB, autoConverge: true, downtimeLimitMs: simModelDowntimeLimitMs(QEMU_DEFAULT_DOWNTIME_LIMIT_MS) }),
      ).result;
      expect(expected.outcome).toBe('converged');
      expect(r.s6.throttlePct).toBeGreaterThan(0);
      expect(r.s6.throttlePct).toBe(expected.throttlePct);
      expect(r.s6.passes).toBe(expected.passes);
      within5pct(r.totalMs, expected.totalTimeMs);
      within5pct(r.s6.downtimeMs!, expected.downtimeMs);
      // the throttle shows in the progress reports as it rises
      const throttles = [...new Set(r.reports.map((p) => p.throttlePct))];
      expect(throttles[0]).toBe(0);
      expect(throttles).toContain(20);
    });

    it('fails cleanly without auto-converge: NOT_CONVERGING, a clear message, the VM still running', async () => {
      const { driver } = makeDriver({ bandwidthMiBps: 128, timeScale: 0 });
      const vm = vmSpec(1024, guest);
      await driver.startVm(vm);
      const migrationId = randomUUID();
      const policy = { autoConverge: false };
      await driver.transferMemory(command(3, vm, migrationId, policy), () => undefined);
      const err = await driver.syncMemory(command(4, vm, migrationId, policy), () => undefined).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlexmigError);
      const e = err as FlexmigError;
      expect(e.details?.code).toBe('NOT_CONVERGING');
      expect(e.retryable).toBe(false);
      expect(e.message).toContain(`VM ${vm.id}`);
      expect(e.message).toContain('cannot converge');
      expect(e.message).toContain('auto-converge is not allowed');
      expect(e.message).toContain('allow auto-converge');
      expect(e.message).toContain('keeps running on the source');
      expect(driver.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
      // a repeat of step 4 gives the same answer; step 6 refuses; compensation leaves it running
      await expect(driver.syncMemory(command(4, vm, migrationId, policy), () => undefined)).rejects.toBe(e);
      await driver.cancelTransfer(vm.id);
      expect(driver.listVms()).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 1024 }]);
    });

    it('switches to post-copy when allowed: step 6 copies the device state only, the rest is pulled after resume', async () => {
      const { driver, clock } = makeDriver({ bandwidthMiBps: 128 });
      const vm = vmSpec(1024, guest);
      const policy = { autoConverge: false, postCopy: true };
      const r = await migrate(driver, clock, vm, policy);
      const expected = simulateWithPolicy(
        { memoryBytes: 1024 * MiB, dirtyRateBytesPerSec: 1024 * MiB, workingSetBytes: 99 * MiB, bandwidthBytesPerSec: 128 * MiB },
        resolveMigrationPolicy({ memoryBytes: 1024 * MiB, downtimeLimitMs: simModelDowntimeLimitMs(QEMU_DEFAULT_DOWNTIME_LIMIT_MS), ...policy }),
      ).result;
      expect(expected.outcome).toBe('postcopy');
      expect(driver.transferOf(vm.id)?.mode).toBe('postcopy');
      expect(r.s6.passes).toBe(expected.passes);
      within5pct(r.s6.downtimeMs!, expected.downtimeMs);
      expect(r.s6.downtimeMs!).toBeLessThan(10);
      expect(r.s6.remainingBytes).toBeCloseTo(99 * MiB, -3);
      within5pct(r.totalMs, expected.precopyTimeMs + expected.downtimeMs);
    });
  });

  it('aborts with COMPLETION_TIMEOUT when a slow convergence outlasts completionTimeoutPerGiBSec', async () => {
    // r = 0.95 converges in ~70 passes, ~200 s: longer than 150 s for 1 GiB
    const { driver, clock } = makeDriver({ bandwidthMiBps: 100 });
    const err = await migrate(driver, clock, vmSpec(1024, { dirtyRateMiBps: 95 }), { autoConverge: false }).catch((e: unknown) => e as FlexmigError);
    expect((err as FlexmigError).details?.code).toBe('COMPLETION_TIMEOUT');
    expect((err as FlexmigError).message).toContain('completion timeout');
    within5pct(clock.now(), 150_000);
  });

  it('aborts with PROGRESS_TIMEOUT when told to wait out a stall (failFastWhenStalled: false)', async () => {
    const { driver } = makeDriver({ bandwidthMiBps: 128, timeScale: 0, failFastWhenStalled: false });
    const err = await migrate(driver, new VirtualClock(), vmSpec(2048, { dirtyRateMiBps: 1024, workingSetMiB: 99 }), { autoConverge: false, progressTimeoutSec: 20 }).catch(
      (e: unknown) => e as FlexmigError,
    );
    expect((err as FlexmigError).details?.code).toBe('PROGRESS_TIMEOUT');
    expect(driver.listVms()[0]!.state).toBe('running');
  });

  it('ends at the model maximum of passes at timeScale 0 rather than looping', async () => {
    const { driver } = makeDriver({ bandwidthMiBps: 128, timeScale: 0, failFastWhenStalled: false, maxPasses: 50 });
    const err = await migrate(driver, new VirtualClock(), vmSpec(1024, { dirtyRateMiBps: 1024, workingSetMiB: 99 }), {
      autoConverge: false,
      completionTimeoutPerGiBSec: 3600,
      progressTimeoutSec: 3600,
    }).catch((e: unknown) => e as FlexmigError);
    expect((err as FlexmigError).details).toMatchObject({ code: 'NOT_CONVERGING', passes: 50 });
  });

  describe('cancel', () => {
    it('stops a running sync within a progress tick and leaves the VM running on the source', async () => {
      const { driver, clock } = makeDriver({ bandwidthMiBps: 100 });
      const vm = vmSpec(4096, { dirtyRateMiBps: 95 }); // long: many passes of many seconds
      await driver.startVm(vm);
      const migrationId = randomUUID();
      const policy = { autoConverge: false };
      await driver.transferMemory(command(3, vm, migrationId, policy), () => undefined);
      let cancelledAt = -1;
      let reportsAfterCancel = 0;
      const sink: ProgressSink = (p) => {
        if (cancelledAt >= 0) reportsAfterCancel += 1;
        else if (p.pass >= 3) {
          cancelledAt = clock.now();
          void driver.cancelTransfer(vm.id);
        }
      };
      const err = await driver.syncMemory(command(4, vm, migrationId, policy), sink).catch((e: unknown) => e as FlexmigError);
      expect((err as FlexmigError).details?.code).toBe('CANCELLED');
      expect((err as FlexmigError).message).toContain('keeps running on the source');
      expect(clock.now() - cancelledAt).toBeLessThanOrEqual(250);
      expect(reportsAfterCancel).toBe(0);
      expect(driver.listVms()).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 4096 }]);
      await expect(driver.transferState(command(6, vm, migrationId, policy))).rejects.toThrow(/no memory transfer/);
    });

    it('stops a transfer from outside too (real clock, timeScale 0 yields between passes)', async () => {
      const { driver } = makeDriver({ bandwidthMiBps: 100, timeScale: 0, clock: undefined, failFastWhenStalled: false, maxPasses: 100_000 });
      const vm = vmSpec(1024, { dirtyRateMiBps: 1024, workingSetMiB: 99 });
      await driver.startVm(vm);
      const migrationId = randomUUID();
      const policy = { autoConverge: false, completionTimeoutPerGiBSec: 3600, progressTimeoutSec: 3600 };
      await driver.transferMemory(command(3, vm, migrationId, policy), () => undefined);
      const sync = driver.syncMemory(command(4, vm, migrationId, policy), () => undefined).catch((e: unknown) => e as FlexmigError);
      await new Promise((r) => setImmediate(r));
      await driver.cancelTransfer(vm.id);
      expect(((await sync) as FlexmigError).details?.code).toBe('CANCELLED');
      expect(driver.listVms()[0]!.state).toBe('running');
    });

    it('resuming the source after step 5 puts the VM back, and step 6 repeats its first answer', async () => {
      const { driver, clock } = makeDriver();
      const vm = vmSpec(1024, { dirtyRateMiBps: 10 });
      const r = await migrate(driver, clock, vm);
      await expect(driver.transferState(command(6, vm, r.migrationId))).resolves.toEqual(r.s6);
      await driver.resumeSource(vm.id);
      expect(driver.listVms()).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 1024 }]);
    });
  });

  it('starts a VM idempotently', async () => {
    const { driver } = makeDriver();
    const vm = vmSpec(2048);
    await driver.startVm(vm);
    await driver.startVm(vm);
    await driver.startVm({ ...vm, memoryMiB: 4096 });
    expect(driver.listVms()).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 2048 }]);
  });

  it('pauses a VM to fence a split brain and keeps it (idempotent); a VM it does not hold is NOT_FOUND', async () => {
    const { driver } = makeDriver();
    const vm = vmSpec(1024);
    await driver.startVm(vm);
    await driver.pauseVm(vm.id);
    await driver.pauseVm(vm.id);
    expect(driver.listVms()).toEqual([{ vmId: vm.id, state: 'paused', memoryMiB: 1024 }]);
    await expect(driver.pauseVm(randomUUID())).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("says how a stream ended (the target's question before it starts the guest): waits for step 6, failed after a cancel, gone without the VM", async () => {
    const { driver } = makeDriver({ timeScale: 0, clock: undefined });
    const vm = vmSpec(1024, { dirtyRateMiBps: 10 });
    await driver.startVm(vm);
    const migrationId = randomUUID();
    await expect(driver.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'failed' }); // no stream of it: the VM runs here
    await driver.transferMemory(command(3, vm, migrationId), () => undefined);
    await driver.syncMemory(command(4, vm, migrationId), () => undefined);
    await driver.pauseSource(vm.id);
    await expect(driver.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'active' });
    const asked = driver.streamEnd(vm.id, migrationId, 5_000);
    await driver.transferState(command(6, vm, migrationId));
    await expect(asked).resolves.toMatchObject({ status: 'completed' });
    await driver.stopSource(vm.id);
    await expect(driver.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'gone' });

    const other = vmSpec(1024, { dirtyRateMiBps: 10 });
    await driver.startVm(other);
    const second = randomUUID();
    await driver.transferMemory(command(3, other, second), () => undefined);
    const waiting = driver.streamEnd(other.id, second, 5_000);
    await driver.cancelTransfer(other.id);
    await expect(waiting).resolves.toMatchObject({ status: 'failed' });
  });

  it('runs step 4 only after step 3, and step 6 only once the VM is paused', async () => {
    const { driver } = makeDriver({ timeScale: 0 });
    const vm = vmSpec(1024, { dirtyRateMiBps: 10 });
    await driver.startVm(vm);
    const migrationId = randomUUID();
    await expect(driver.syncMemory(command(4, vm, migrationId), () => undefined)).rejects.toThrow(/step 3 first/);
    await driver.transferMemory(command(3, vm, migrationId), () => undefined);
    await driver.syncMemory(command(4, vm, migrationId), () => undefined);
    await expect(driver.transferState(command(6, vm, migrationId))).rejects.toThrow(/must be paused/);
  });
});
