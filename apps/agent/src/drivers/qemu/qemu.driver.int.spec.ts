/**
 * The qemu driver with REAL QEMU (TCG unless FLEXMIG_TEST_QEMU_ACCEL says otherwise): both roles in one
 * process, two drivers with their own run dirs, migrating over loopback TCP. Skips only when
 * qemu-system-x86_64 is not installed (CI installs Debian's qemu-system-x86).
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CheckVmCpu, CheckVmMemory, FlexmigError, MigrationPolicyInput, MigrationPolicySchema, StepCommand, StepName, TransferStats, VmSpec } from '@flexmig/contracts';
import { AgentHandlers } from '../../agent.handlers';
import { AgentEnv } from '../../config';
import { MigrationStepsService } from '../../migration-steps.service';
import { ProgressSink } from '../driver';
import { AccelSetting } from './cpu-probe';
import { migrationPort, rangePortsFrom } from './qemu-address';
import { residentGuestBytes } from './guest-residency';
import { isOurQemu, pidAlive } from './qemu-process';
import { QemuDriver, QemuDriverOptions } from './qemu.driver';
import { switchoverFits } from './switchover-decision';
import { SwitchoverRecord, TransferMonitor } from './transfer-monitor';
import type { Vm } from './vm-registry';
import { QmpClient, QmpError, QmpEvent } from './qmp-client';
import { MIGRATION_FD_NAME } from './migration-connection';
import { sleep } from '@flexmig/timing';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) {
  console.warn(`SKIPPED: the qemu driver integration tests need ${BINARY} (apt-get install -y qemu-system-x86)`);
}
const d = haveQemu ? describe : describe.skip;
const ACCEL = (process.env.FLEXMIG_TEST_QEMU_ACCEL ?? 'tcg') as AccelSetting;
const BASELINE = 'Westmere'; // runs with enforce under TCG on any x86 host
// a port window of its own per run, so parallel runs on one machine do not meet
const PORT_LO = 40000 + (process.pid % 200) * 25;

const dirs: string[] = [];
const drivers: QemuDriver[] = [];
/** Every run directory this file made (`dirs` empties after each test): its QEMUs name one of them. */
const everyRunDir: string[] = [];

function driver(extra: Partial<QemuDriverOptions> = {}, runDir?: string): QemuDriver {
  const dir = runDir ?? mkdtempSync(join(tmpdir(), 'fmq-'));
  if (!runDir) dirs.push(dir);
  everyRunDir.push(dir);
  const drv = new QemuDriver({ binary: BINARY, accel: ACCEL, runDir: dir, listenHost: '127.0.0.1', portRange: [PORT_LO, PORT_LO + 24], pollIntervalMs: 100, ...extra });
  drivers.push(drv);
  return drv;
}

/** The order in which each QMP connection sent commands, had them answered, and heard events (`of`: the connection that heard one). */
function qmpTimeline() {
  const timelines = new Map<QmpClient, string[]>();
  const note = (c: QmpClient, what: string) => timelines.set(c, [...(timelines.get(c) ?? []), what]);
  const { execute, emit } = QmpClient.prototype;
  const executed = jest.spyOn(QmpClient.prototype, 'execute').mockImplementation(function (this: QmpClient, command: string, ...rest: unknown[]) {
    note(this, `sent ${command}`);
    const answer = (execute as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
    answer.then(
      () => note(this, `answered ${command}`),
      () => note(this, `refused ${command}`),
    );
    return answer as never;
  });
  const heard = jest.spyOn(QmpClient.prototype, 'emit').mockImplementation(function (this: QmpClient, name: string | symbol, ...rest: unknown[]) {
    if (name === 'event') {
      const e = rest[0] as QmpEvent;
      note(this, `event ${e.event}${e.data?.status ? ` ${String(e.data.status)}` : ''}`);
    }
    return emit.call(this, name, ...rest);
  });
  return {
    executed,
    of: (what: string): string[] => [...timelines.values()].find((t) => t.includes(what)) ?? [],
    restore: () => {
      executed.mockRestore();
      heard.mockRestore();
    },
  };
}

function vmSpec(over: Partial<VmSpec> = {}): VmSpec {
  return { id: randomUUID(), name: 'guest', memoryMiB: 128, vcpus: 1, cpuBaseline: BASELINE, ...over };
}

function commands(vm: VmSpec, policy: MigrationPolicyInput = {}, incomingAddress?: () => string | undefined) {
  const migrationId = randomUUID();
  const p = MigrationPolicySchema.parse(policy);
  return (step: number, stepName: StepName, role: 'source' | 'target'): StepCommand => ({
    // what the scheduler does: the target's step-2 reply says where it listens, the source gets it
    ...(incomingAddress?.() ? { incomingAddress: incomingAddress() } : {}),
    migrationId,
    step: step as StepCommand['step'],
    stepName,
    attempt: 1,
    role,
    vm,
    sourceHostId: 'src-host',
    targetHostId: 'dst-host',
    targetAddress: '127.0.0.1:49152',
    policy: p,
  });
}

/** Steps 3–8 as the saga drives them, once the target listens (step 2): the stream, the pause, the switchover, the resume and the source's end. */
async function stepsThreeToEight(src: QemuDriver, dst: QemuDriver, vmId: string, cmd: (step: number, name: StepName, role: 'source' | 'target') => StepCommand): Promise<void> {
  await src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined);
  await src.syncMemory(cmd(4, 'sync-memory', 'source'), () => undefined);
  await src.pauseSource(vmId);
  await src.transferState(cmd(6, 'transfer-state', 'source'));
  await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
  await dst.resumeTarget(vmId);
  await src.stopSource(vmId);
}

/** An idle VM running on a source driver, and a target driver that listens for it (step 2 done there). */
async function idleVmAndListeningTarget() {
  const src = driver();
  const dst = driver();
  const vm = vmSpec();
  await src.startVm(vm);
  let listening: string | undefined;
  const cmd = commands(vm, {}, () => listening);
  const migrationId = cmd(2, 'transfer-config', 'target').migrationId;
  ({ incomingAddress: listening } = await dst.prepareIncoming(cmd(2, 'transfer-config', 'target')));
  return { src, dst, vm, cmd, migrationId };
}

/** A listener on `port` of 127.0.0.1, as another program would hold it; the function closes it. */
async function holdPort(port: number): Promise<() => Promise<void>> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

const progressLog = () => {
  const seen: Parameters<ProgressSink>[0][] = [];
  const sink: ProgressSink = (p) => seen.push(p);
  return { seen, sink };
};

/**
 * Resolves once the workload guest has written its 'B' marker `markers` times since it booted ('A'): it then
 * rewrites its range at full speed (a marker every few full passes, guest/workload.S). Reads the serial
 * file only: stopping the guest to look (as checkMemory does) is not part of what a migration meets.
 */
async function untilGuestDirties(drv: QemuDriver, vmId: string, markers = 2, timeoutMs = 30_000): Promise<void> {
  const file = drv.vmInfo(vmId)!.serialFile;
  const seen = () => {
    const out = existsSync(file) ? readFileSync(file, 'latin1') : '';
    const boot = out.indexOf('A');
    return boot < 0 ? 0 : out.slice(boot).split('B').length - 1;
  };
  const t0 = Date.now();
  while (seen() < markers) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`VM ${vmId} wrote ${seen()} of ${markers} pass markers within ${timeoutMs} ms (serial output ${file})`);
    await sleep(20);
  }
}

async function status(drv: QemuDriver, vmId: string): Promise<string> {
  const info = drv.vmInfo(vmId);
  if (!info?.alive) return 'gone';
  // a second QMP client cannot connect (one at a time): ask through the driver's own listing
  return drv.listVms().find((v) => v.vmId === vmId)?.state ?? 'unknown';
}

/**
 * An agent killed at one QMP call of one VM (fault injection): that call never answers, so the agent's
 * work stops there, while the QEMU it started runs on. Other QEMUs (the CPU probes) are unaffected.
 */
function hangQmp(method: 'connect' | 'execute', socket: string, when: (first: unknown) => boolean = () => true) {
  const original = QmpClient.prototype[method] as (this: QmpClient, ...args: unknown[]) => Promise<unknown>;
  const hung = function (this: QmpClient, ...args: unknown[]) {
    return this.socketPath === socket && when(args[0]) ? new Promise<never>(() => undefined) : original.apply(this, args);
  };
  return jest.spyOn(QmpClient.prototype, method).mockImplementation(hung as never);
}

/** The live QEMU processes whose command line names `qmpSocket`. */
function qemusNaming(qmpSocket: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => isOurQemu(pid, qmpSocket));
}

/** Nothing of the VM is left in the run dir but the shared guest images. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => f !== 'images');
}

afterEach(async () => {
  for (const drv of drivers.splice(0)) await drv.destroyAll().catch(() => undefined);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

d('QemuDriver with real QEMU', () => {
  jest.setTimeout(150_000);

  it('reports the host CPU reduced to what QEMU can run', async () => {
    const drv = driver();
    const cpu = await drv.hostCpu();
    if (process.env.FLEXMIG_TEST_VERBOSE) console.log('host cpu', cpu.vendor, cpu.modelName, cpu.features.join(' '));
    expect(['Intel', 'AMD', 'Hygon']).toContain(cpu.vendor);
    expect(cpu.features.length).toBeGreaterThan(5);
    expect(cpu.modelName).toMatch(/QEMU (kvm|tcg)/);
  });

  it("(a) migrates an idle VM through steps 2–8; the memory check passes on the target; nothing is left on the source; the target hears its copy loaded before step 6", async () => {
    // the default: no fixed port range; the target listens on a port the kernel picks and says which
    const src = driver({ portRange: undefined });
    const dst = driver({ portRange: undefined });
    const vm = vmSpec();
    await src.startVm(vm);
    // what the guest sees of its CPU, read from the guest itself, before the move
    const cpuCheck = (drv: QemuDriver, hostId: string) =>
      new AgentHandlers(drv, {} as MigrationStepsService, { HOST_ID: hostId } as AgentEnv).checkCpu({ vmId: vm.id, baseline: BASELINE }).then((r) => CheckVmCpu.reply.parse(r));
    const cpuBefore = await cpuCheck(src, 'src-host');
    expect(cpuBefore).toMatchObject({ ok: true, hostId: 'src-host', baseline: BASELINE, source: 'guest', missing: [], extra: [] });
    const srcPid = src.vmInfo(vm.id)!.pid;
    let listening: string | undefined;
    const cmd = commands(vm, {}, () => listening);
    const { seen, sink } = progressLog();
    const qmp = qmpTimeline();
    const executed = qmp.executed;
    // the agent asks the source's word as soon as it hears the incoming copy loaded (source-word-ahead.ts)
    const loaded: { vmId: string; migrationId: string; by: string }[] = [];
    dst.onIncomingLoaded((vmId, migrationId) => loaded.push({ vmId, migrationId, by: 'dst' }));
    src.onIncomingLoaded((vmId, migrationId) => loaded.push({ vmId, migrationId, by: 'src' }));

    const { incomingAddress } = await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    expect(incomingAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    listening = incomingAddress;
    // a guest held at -incoming -S takes no CPUID sample: the check says so rather than read stale memory
    await expect(dst.guestCpu(vm.id)).rejects.toMatchObject({ code: 'VM_NOT_RUNNING' });
    expect(dst.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'incoming' })]);
    const { migrationId } = cmd(3, 'transfer-memory', 'source');
    expect(src.heldAtSwitchover(vm.id, migrationId)).toBe(false);
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
    const step4 = await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink);
    const switchover = src.switchoverOf(vm.id);
    // held at pre-switchover once step 4 ends (after step 3 already, for most idle guests: steps 4 and 5 are then
    // done with it), and only for this migration
    expect(src.heldAtSwitchover(vm.id, migrationId)).toBe(true);
    expect(src.heldAtSwitchover(vm.id, randomUUID())).toBe(false);
    const pausedAt = await src.pauseSource(vm.id);
    const stats = await src.transferState(cmd(6, 'transfer-state', 'source'));
    // the target's half of step 6 after its stream ended (an idle guest's usual case; a moment for its QEMU's
    // MIGRATION event to be read): it takes that event's `completed` and asks its QEMU nothing inside the downtime
    await sleep(50);
    // heard before step 6 arrives, once, by the target only
    expect(loaded).toEqual([{ vmId: vm.id, migrationId, by: 'dst' }]);
    const beforeStep6 = executed.mock.calls.length;
    await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
    expect(executed.mock.calls.slice(beforeStep6).map(([c]) => c)).toEqual([]);
    const resumedAt = await dst.resumeTarget(vm.id);
    await src.stopSource(vm.id);

    if (process.env.FLEXMIG_TEST_VERBOSE) console.log('idle run', stats, { guestSeenDowntimeMs: resumedAt.getTime() - pausedAt.getTime() });
    // the stream went over the source agent's own connection (TCP_NODELAY), handed to QEMU: migration-connection.ts
    expect(executed.mock.calls.filter(([c]) => c === 'migrate').map(([, args]) => args)).toEqual([{ uri: `fd:${MIGRATION_FD_NAME}` }]);
    // QEMU's MIGRATION pre-switchover event is met at once by the query of the figures at the stop and
    // migrate-continue, sent together: the stopped guest's final copy waits on no answer of QEMU's
    const heard = 'event MIGRATION pre-switchover';
    const source = qmp.of(heard);
    expect(source.slice(source.indexOf(heard) + 1, source.indexOf(heard) + 3)).toEqual(['sent query-migrate', 'sent migrate-continue']);
    // step 4 ends with that query's figures, the ones the switchover was judged on
    expect(step4.remainingBytes).toBe(switchover!.remainingBytes);
    qmp.restore();
    expect(stats.passes).toBeGreaterThanOrEqual(1);
    expect(stats.bytesTransferred).toBeGreaterThan(0);
    expect(stats.downtimeMs).toBeDefined();
    expect(resumedAt.getTime()).toBeGreaterThanOrEqual(pausedAt.getTime());
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[0]).toEqual(expect.objectContaining({ totalBytes: expect.any(Number), transferredBytes: expect.any(Number) }));

    const check = await dst.checkMemory(vm.id);
    expect(check).toEqual(expect.objectContaining({ ok: true, badPages: 0, advancedAfterCheck: true }));
    expect(dst.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
    // after the move: a sample the guest took on the target (its sequence went on from the migrated memory),
    // and the CPU it sees did not change
    const cpuAfter = await cpuCheck(dst, 'dst-host');
    expect(cpuAfter).toMatchObject({ ok: true, hostId: 'dst-host', baseline: BASELINE, source: 'guest', missing: [], extra: [] });
    expect(cpuAfter.sample!).toBeGreaterThan(cpuBefore.sample!);
    expect(cpuAfter.seen).toEqual(cpuBefore.seen);
    expect(cpuAfter.exceptions).toEqual(cpuBefore.exceptions);
    // the source QEMU is gone, with its socket and files
    expect(pidAlive(srcPid)).toBe(false);
    expect(src.listVms()).toEqual([]);
    expect(leftovers(dirs[0]!)).toEqual([]);
    // repeats answer without acting again
    await expect(dst.resumeTarget(vm.id)).resolves.toEqual(resumedAt);
    await expect(src.stopSource(vm.id)).resolves.toBeUndefined();
  });

  it("step 2 touches the incoming copy's memory before the stream when the host has it (auto), and not when it lacks it or is told not to; the touched copy arrives intact and takes the source's word on what holds data", async () => {
    const memoryMiB = 256;
    const MiB = 2 ** 20;
    const available = (mib: number) => () => mib;
    /**
     * One migration with `extra` on the target: its copy's resident memory after step 2 as a share of its memory,
     * whether its state says preallocated, what the source said of the guest's memory that held data (asked as the
     * target's agent asks, before step 8), the memory check of a touched copy, and the resident memory a prediction
     * reads there after.
     */
    const migrateWith = async (extra: Partial<QemuDriverOptions>) => {
      const src = driver();
      const dst = driver(extra);
      const vm = vmSpec({ memoryMiB });
      await src.startVm(vm);
      let listening: string | undefined;
      const cmd = commands(vm, {}, () => listening);
      listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
      const info = dst.vmInfo(vm.id)!;
      const resident = residentGuestBytes(readFileSync(`/proc/${info.pid}/smaps`, 'utf8'), memoryMiB * MiB);
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined);
      await src.syncMemory(cmd(4, 'sync-memory', 'source'), () => undefined);
      await src.pauseSource(vm.id);
      await src.transferState(cmd(6, 'transfer-state', 'source'));
      await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
      const word = await src.streamEnd(vm.id, cmd(6, 'transfer-state', 'target').migrationId, 1_000);
      await dst.resumeTarget(vm.id);
      if (word.residentBytes !== undefined) dst.noteArrival(vm.id, { residentBytes: word.residentBytes });
      await src.stopSource(vm.id);
      const sample = await dst.dirtyRate(vm.id, { fresh: true });
      return {
        residentShare: (resident ?? NaN) / (memoryMiB * MiB),
        preallocated: info.preallocated === true,
        word,
        kept: dst.vmInfo(vm.id)?.residentBytesAtArrival,
        check: info.preallocated ? await dst.checkMemory(vm.id) : undefined,
        predictedResident: sample.residentBytes,
      };
    };

    const roomy = await migrateWith({ availableMemoryMiB: available(memoryMiB + 4096) });
    expect(roomy.preallocated).toBe(true);
    expect(roomy.residentShare).toBeGreaterThanOrEqual(0.95);
    expect(roomy.check).toMatchObject({ ok: true, badPages: 0 });
    // the source's resident memory when its stream started: some of the guest, not all of it
    expect(roomy.word).toMatchObject({ status: 'completed', residentBytes: expect.any(Number) });
    expect(roomy.word.residentBytes!).toBeGreaterThan(0);
    expect(roomy.word.residentBytes!).toBeLessThan(0.5 * memoryMiB * MiB);
    // the touched copy is resident whole; it keeps the source's word, and a prediction takes that instead
    expect(roomy.kept).toBe(roomy.word.residentBytes);
    expect(roomy.predictedResident).toBe(roomy.word.residentBytes);

    // the guest and 1 GiB of headroom do not fit: the pages fault in as the stream writes them
    const tight = await migrateWith({ availableMemoryMiB: available(memoryMiB + 512) });
    expect(tight.preallocated).toBe(false);
    expect(tight.residentShare).toBeLessThan(0.5);
    // (the memory check of a copy left to fault in is not this test's: on this kind of machine it found pages a
    // pass behind in about 1 of 20 such migrations, with the code before this change too: docs/switchover.md)
    // its own resident memory counts, read from its QEMU: the source's word is not kept
    expect(tight.word.residentBytes).toEqual(expect.any(Number));
    expect(tight.kept).toBeUndefined();
    expect(tight.predictedResident).toEqual(expect.any(Number));

    const off = await migrateWith({ preallocIncoming: 'off', availableMemoryMiB: available(memoryMiB + 4096) });
    expect(off.preallocated).toBe(false);
    expect(off.residentShare).toBeLessThan(0.5);
  });

  it('a QMP connection that cannot hand QEMU a descriptor: QEMU connects to the target itself (tcp:), and the guest arrives intact', async () => {
    const { src, dst, vm, cmd } = await idleVmAndListeningTarget();
    const noFds = jest.spyOn(QmpClient.prototype, 'passesFds', 'get').mockReturnValue(false);
    const executed = jest.spyOn(QmpClient.prototype, 'execute');
    const warned = jest.spyOn(Logger.prototype, 'warn');
    try {
      await stepsThreeToEight(src, dst, vm.id, cmd);
      const incoming = (cmd(3, 'transfer-memory', 'source') as { incomingAddress?: string }).incomingAddress!;
      expect(executed.mock.calls.filter(([c]) => c === 'migrate').map(([, args]) => args)).toEqual([{ uri: `tcp:${incoming}` }]);
      // the operator learns what it costs and why
      expect(warned).toHaveBeenCalledWith(expect.stringMatching(new RegExp(`→ tcp:${incoming.replace(/\./g, '\\.')} \\(QEMU connects itself, with Nagle's algorithm on: .*because this Node\\.js cannot hand QEMU a descriptor`)));
    } finally {
      noFds.mockRestore();
      executed.mockRestore();
      warned.mockRestore();
    }
    expect(await dst.checkMemory(vm.id)).toMatchObject({ ok: true, badPages: 0 });
  });

  it("QEMU's pre-switchover event lost: the next poll sees the state and starts the final copy with its figures; the guest arrives intact", async () => {
    const { src, dst, vm, cmd } = await idleVmAndListeningTarget();
    const onEvent = TransferMonitor.prototype.onEvent;
    const lost = jest.spyOn(TransferMonitor.prototype, 'onEvent').mockImplementation(function (this: TransferMonitor, v: Vm, e: QmpEvent) {
      if (e.event !== 'MIGRATION' || e.data?.status !== 'pre-switchover') onEvent.call(this, v, e);
    });
    const qmp = qmpTimeline();
    let step4: TransferStats;
    let switchover: SwitchoverRecord | undefined;
    try {
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined);
      step4 = await src.syncMemory(cmd(4, 'sync-memory', 'source'), () => undefined);
      switchover = src.switchoverOf(vm.id);
      await src.pauseSource(vm.id);
      await src.transferState(cmd(6, 'transfer-state', 'source'));
      await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
      await dst.resumeTarget(vm.id);
    } finally {
      lost.mockRestore();
      qmp.restore();
    }
    // migrate-continue went out after a poll's query was answered, past the event no one heard
    const heard = 'event MIGRATION pre-switchover';
    const source = qmp.of(heard);
    const continued = source.indexOf('sent migrate-continue');
    expect(continued).toBeGreaterThan(source.indexOf(heard));
    expect(source[continued - 1]).toBe('answered query-migrate');
    // that poll's figures are the switchover's, and step 4's
    expect(switchover).toBeDefined();
    expect(step4.remainingBytes).toBe(switchover!.remainingBytes);
    await src.stopSource(vm.id);
    expect(await dst.checkMemory(vm.id)).toMatchObject({ ok: true, badPages: 0 });
  });

  it('QEMU refusing `migrate` after it took the connection: the step fails, the connection is closed rather than left open on the target, and a repeat starts afresh', async () => {
    const { src, dst, vm, cmd } = await idleVmAndListeningTarget();
    const original = QmpClient.prototype.execute;
    let refused = 0;
    const refuse = jest.spyOn(QmpClient.prototype, 'execute').mockImplementation(function (this: QmpClient, command: string, ...rest: unknown[]) {
      if (command === 'migrate' && refused++ === 0) return Promise.reject(new QmpError('migrate', 'GenericError', 'refused for the test', this.label));
      return (original as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
    } as never);
    try {
      await expect(src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined)).rejects.toMatchObject({ desc: 'refused for the test' });
    } finally {
      refuse.mockRestore();
    }
    // the target's incoming QEMU saw the connection close (QEMU 7.2 ends an incoming migration whose stream breaks)
    for (const t0 = Date.now(); dst.vmInfo(vm.id)?.alive; await sleep(20)) {
      if (Date.now() - t0 > 10_000) throw new Error('the target copy still runs 10 s after its stream closed');
    }
    expect(src.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
    // a new target copy and the same step again: a fresh stream, which completes
    await dst.destroyIncoming(vm.id);
    const listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
    const again = (step: number, name: StepName, role: 'source' | 'target') => ({ ...cmd(step, name, role), incomingAddress: listening });
    await stepsThreeToEight(src, dst, vm.id, again);
    expect(await dst.checkMemory(vm.id)).toMatchObject({ ok: true, badPages: 0 });
  });

  it("a fixed port range whose migration-id port is taken: the target listens on the range's next free port, says so in its reply, and the stream goes there", async () => {
    // bench/qemu's range (49700-49799) lies inside the kernel's ephemeral ports: an outgoing connection
    // held the port derived from one migration's id, and step 2 failed ("Address already in use")
    const range: [number, number] = [PORT_LO, PORT_LO + 2];
    const src = driver({ portRange: range });
    const dst = driver({ portRange: range });
    const vm = vmSpec();
    await src.startVm(vm);
    let listening: string | undefined;
    const cmd = commands(vm, {}, () => listening);
    const derived = migrationPort(cmd(2, 'transfer-config', 'target').migrationId, range);
    const release = await holdPort(derived);
    try {
      listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
      expect(listening).toBe(`127.0.0.1:${rangePortsFrom(range, derived - range[0])[1]}`);
      await stepsThreeToEight(src, dst, vm.id, cmd);
      expect((await dst.checkMemory(vm.id)).ok).toBe(true);
    } finally {
      await release();
    }
  });

  it('a fixed port range with every port taken: step 2 fails with CONFLICT naming the range and what to change, and leaves no QEMU behind', async () => {
    const range: [number, number] = [PORT_LO + 3, PORT_LO + 4];
    const dst = driver({ portRange: range });
    const releases = await Promise.all([range[0], range[1]].map(holdPort));
    try {
      const err = await dst.prepareIncoming(commands(vmSpec())(2, 'transfer-config', 'target')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlexmigError);
      expect(err).toMatchObject({ code: 'CONFLICT' });
      expect((err as FlexmigError).message).toMatch(/every port of the range \(2, from \d+\) is in use on 127\.0\.0\.1: widen QEMU_MIGRATION_PORT_RANGE/);
      expect(dst.listVms()).toEqual([]);
    } finally {
      await Promise.all(releases.map((release) => release()));
    }
  });

  it('VMs of one workload side by side on a host: each boots its own copy of the guest image (QEMU write-locks it)', async () => {
    // the same memory size and workload build the same image; shared, the second QEMU died at start
    // ("Failed to get write lock") and an incoming VM would have failed at `cont`, past the point of no return
    const src = driver({ portRange: undefined });
    const dst = driver({ portRange: undefined });
    const [a, b, moved] = [vmSpec(), vmSpec(), vmSpec()];
    await dst.startVm(a);
    await src.startVm(moved);
    const cmd = commands(moved);
    const { incomingAddress } = await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    await stepsThreeToEight(src, dst, moved.id, (n, name, role) => ({ ...cmd(n, name, role), incomingAddress }));
    await dst.startVm(b);

    expect(new Set([a.id, b.id, moved.id].map((id) => dst.vmInfo(id)!.image)).size).toBe(3);
    expect(new Map(dst.listVms().map((v) => [v.vmId, v.state]))).toEqual(new Map([a.id, b.id, moved.id].map((id) => [id, 'running'])));
    expect((await dst.checkMemory(moved.id)).ok).toBe(true);
    await dst.destroyAll();
    expect(leftovers(dirs[1]!)).toEqual([]);
  });

  it('CheckVmMemory through the agent handler: a VM of the default workload, its pattern intact and advancing', async () => {
    // inventory's VMs carry no workload: the agent's default (QEMU_GUEST_DIRTY_RATE_MIBPS/_WORKING_SET_MIB) applies
    const drv = driver({ defaultWorkload: { dirtyRateMiBps: 16, workingSetMiB: 8 } });
    const vm = vmSpec();
    await drv.startVm(vm);
    expect(drv.vmInfo(vm.id)!.guest.memEnd - drv.vmInfo(vm.id)!.guest.memStart).toBe(8 * 1024 * 1024);
    const handlers = new AgentHandlers(drv, {} as MigrationStepsService, { HOST_ID: 'dst-host' } as AgentEnv);
    const reply = CheckVmMemory.reply.parse(await handlers.checkMemory({ vmId: vm.id }));
    expect(reply).toEqual(expect.objectContaining({ vmId: vm.id, ok: true, pagesChecked: 2048, badPages: 0, guestAdvancing: true }));
    await expect(handlers.checkMemory({ vmId: randomUUID() })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('host hygiene: run dir 0700, state and log 0600, QEMU under -sandbox, memory dumps removed, forged state files ignored', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'fmq-'));
    dirs.push(parent);
    everyRunDir.push(parent);
    const dir = join(parent, 'run');
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    // a state file the agent did not write (another user, a bad disk) naming a pid that is not its QEMU
    writeFileSync(join(dir, `${randomUUID()}.json`), JSON.stringify({ vmId: 'not-a-vm', pid: 1, qmpSocket: '/run/x.sock' }));
    const drv = driver({ defaultWorkload: { dirtyRateMiBps: 16, workingSetMiB: 8 } }, dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(drv.listVms()).toEqual([]);
    const vm = vmSpec();
    await drv.startVm(vm);
    const info = drv.vmInfo(vm.id)!;
    expect(statSync(join(dir, `${vm.id}.json`)).mode & 0o777).toBe(0o600);
    expect(statSync(info.logFile).mode & 0o777).toBe(0o600);
    const argv = readFileSync(`/proc/${info.pid}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('-sandbox') + 1]).toMatch(/^on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny$/);
    expect((await drv.checkMemory(vm.id)).ok).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith('memcheck-') || f.startsWith('probe-'))).toEqual([]);
  });

  it("says how its stream ended, as the target's agent asks before it starts the guest: from the transfer it follows, after a restart from QEMU, and gone once stopped", async () => {
    const { src, dst, vm, cmd, migrationId } = await idleVmAndListeningTarget();
    await expect(src.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'failed' }); // no stream yet: the guest runs here
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined);
    await src.syncMemory(cmd(4, 'sync-memory', 'source'), () => undefined);
    await src.pauseSource(vm.id);
    // asked while the final copy may still run: answered once QEMU says completed, before step 6's figures
    const asked = src.streamEnd(vm.id, migrationId, 20_000);
    const [word] = await Promise.all([asked, src.transferState(cmd(6, 'transfer-state', 'source')), dst.confirmIncoming(cmd(6, 'transfer-state', 'target'))]);
    expect(word).toMatchObject({ status: 'completed' });
    expect(await status(src, vm.id)).toBe('paused');
    await expect(src.streamEnd(vm.id, randomUUID(), 0)).resolves.toMatchObject({ status: 'failed' }); // another migration's question
    // an agent that restarted follows no transfer: it asks QEMU, which says completed and postmigrate
    await src.close();
    const again = driver({}, dirs[0]);
    await expect(again.streamEnd(vm.id, migrationId, 1_000)).resolves.toMatchObject({ status: 'completed', detail: expect.stringContaining('postmigrate') });
    await dst.resumeTarget(vm.id);
    await again.stopSource(vm.id);
    await expect(again.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'gone' });
    expect((await dst.checkMemory(vm.id)).ok).toBe(true);
  });

  it("a source agent that lost sight of a final copy QEMU completed leaves the guest paused (it resumed it before) and says completed: the guest runs on the target only", async () => {
    const { src, dst, vm, cmd, migrationId } = await idleVmAndListeningTarget();
    // the agent's QMP link breaks during the final copy: its first look at the stream after migrate-continue
    // fails, once QEMU has completed the stream (the target has the whole state)
    const socket = src.vmInfo(vm.id)!.qmpSocket;
    const original = QmpClient.prototype.execute;
    let continued = false;
    let broken = false;
    const spy = jest.spyOn(QmpClient.prototype, 'execute').mockImplementation(async function (this: QmpClient, ...args: unknown[]) {
      if (this.socketPath === socket && args[0] === 'migrate-continue') continued = true;
      const run = (...a: unknown[]) => (original as (...x: unknown[]) => Promise<unknown>).apply(this, a);
      if (this.socketPath === socket && continued && !broken && args[0] === 'query-migrate') {
        broken = true;
        for (let i = 0; i < 600 && ((await run('query-migrate')) as { status: string }).status !== 'completed'; i++) await sleep(50);
        throw new Error('QMP connection lost (injected)');
      }
      return run(...args);
    } as never);
    try {
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), () => undefined);
      await src.syncMemory(cmd(4, 'sync-memory', 'source'), () => undefined);
      await src.pauseSource(vm.id);
      await dst.confirmIncoming(cmd(6, 'transfer-state', 'target')); // the state loaded there
      await expect(src.transferState(cmd(6, 'transfer-state', 'source'))).rejects.toThrow(/injected/);
    } finally {
      spy.mockRestore();
    }
    expect(broken).toBe(true);
    // the step failed here, but QEMU completed the stream: the guest stays paused (before 2026-12-05 the agent
    // resumed it, beside a target that could start too), and the target's agent hears completed
    expect(await status(src, vm.id)).toBe('paused');
    await expect(src.streamEnd(vm.id, migrationId, 0)).resolves.toMatchObject({ status: 'completed' });
    await dst.resumeTarget(vm.id);
    expect(await status(src, vm.id)).toBe('paused');
    expect((await dst.checkMemory(vm.id)).ok).toBe(true);
    await src.stopSource(vm.id);
  });

  it('a restarted agent finds the QEMU it started and can still drive it', async () => {
    const first = driver();
    const vm = vmSpec();
    await first.startVm(vm);
    const pid = first.vmInfo(vm.id)!.pid;
    await first.close();
    const again = driver({}, dirs[0]);
    expect(again.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
    const check = await again.checkMemory(vm.id);
    expect(check.ok).toBe(true);
    expect(again.vmInfo(vm.id)!.pid).toBe(pid);
    await again.destroyAll();
    expect(pidAlive(pid)).toBe(false);
  });

  describe('(b) a VM that dirties memory faster than the bandwidth cap', () => {
    // The guest re-writes 24 MiB at ~48 MiB/s (3× the cap; the spin delay is calibrated for TCG on the
    // reference machine, so it can be off by a factor on another) against a 16 MiB/s cap. With a 1000 ms limit QEMU
    // switches over once ≤ 16 MiB stay dirty after a pass: unthrottled every pass ends with all 24 MiB
    // dirty (a 1.5 s pass sees ~8 guest passes), so it never converges; with auto-converge the throttle
    // (raised in steps of 50 % then +20 so TCG gets there in a few passes) brings it under. Measured
    // under TCG on a 2-core machine: at a 99 % throttle ~10 MiB stay dirty per pass (TCG's throttle is
    // less effective than its percentage says), which is why the limit is 1000 ms and not 300 ms
    // (reference §9: with the default 300 ms, TCG never converges).
    const busy = () => vmSpec({ workload: { dirtyRateMiBps: 48, workingSetMiB: 24 } });
    const policy = (autoConverge: boolean): MigrationPolicyInput => ({
      bandwidthMiBps: 16,
      downtimeLimitMs: 1000,
      autoConverge,
      completionTimeoutPerGiBSec: 3600,
      progressTimeoutSec: 120,
    });

    it('completes with auto-converge, memory intact on the target', async () => {
      const src = driver({ throttleInitialPct: 50, throttleIncrementPct: 20 });
      const dst = driver();
      const vm = busy();
      await src.startVm(vm);
      await untilGuestDirties(src, vm.id); // else a stream started during boot sends zero pages and converges at once
      const cmd = commands(vm, policy(true));
      const { seen, sink } = progressLog();
      await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
      await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink);
      await src.pauseSource(vm.id);
      const stats = await src.transferState(cmd(6, 'transfer-state', 'source'));
      await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
      await dst.resumeTarget(vm.id);
      await src.stopSource(vm.id);
      if (process.env.FLEXMIG_TEST_VERBOSE) console.log('auto-converge run', stats, seen.at(-1));
      expect(stats.throttlePct).toBeGreaterThan(0);
      expect(stats.passes).toBeGreaterThan(1);
      expect(Math.max(...seen.map((p) => p.throttlePct ?? 0))).toBeGreaterThan(0);
      const check = await dst.checkMemory(vm.id);
      expect(check).toEqual(expect.objectContaining({ ok: true, badPages: 0, advancedAfterCheck: true }));
    });

    it('fails cleanly without auto-converge: clear error, VM running on the source, target destroyed', async () => {
      // Without auto-converge the outcome must not depend on how fast this machine runs the guest: the
      // guest writes without a spin delay over 16 MiB, against a 4 MiB/s cap and a 300 ms limit (1.2 MiB
      // may stay dirty at the switchover). Each pass lasts about 4 s, in which even a guest a hundred
      // times slower than on the reference machine re-dirties the whole range; it can never converge.
      const src = driver({ notConvergingPasses: 3 });
      const dst = driver();
      const vm = vmSpec({ workload: { dirtyRateMiBps: 100_000, workingSetMiB: 16 } });
      await src.startVm(vm);
      await untilGuestDirties(src, vm.id);
      const cmd = commands(vm, { ...policy(false), bandwidthMiBps: 4, downtimeLimitMs: 300 });
      const { sink } = progressLog();
      await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
      const err = await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FlexmigError);
      expect((err as FlexmigError).details?.code).toBe('NOT_CONVERGING');
      expect((err as FlexmigError).message).toMatch(/auto-converge is not allowed.*keeps running on the source/s);
      expect(await status(src, vm.id)).toBe('running');
      // the saga's compensations
      await src.cancelTransfer(vm.id);
      await dst.destroyIncoming(vm.id);
      expect(dst.listVms()).toEqual([]);
      expect(leftovers(dirs[1]!)).toEqual([]);
      expect((await src.checkMemory(vm.id)).ok).toBe(true); // and it still runs, intact
    });
  });

  it('(f) a dirtying guest switches over only when what is left fits the limit at the bandwidth the agent measured (switchover-decision.ts); the memory arrives intact', async () => {
    // QEMU's own bandwidth figure once let 43 MiB through a 300 ms limit here (413 ms of downtime)
    const src = driver({ portRange: undefined, pollIntervalMs: 50 });
    const dst = driver({ portRange: undefined });
    // bench/qemu's dirtying guest: it rewrites 384 of its 512 MiB without pause, uncapped bandwidth, the
    // default 300 ms limit and auto-converge (the policy's lever when it does not fit). 192 of 256 MiB once
    // went over loopback in less than the 200 ms the agent measures over, from a guest the loaded machine
    // starved (CI, 2026-12-05): QEMU, held to its 1 ms limit until then, switched over with next to nothing
    // left and no figure of the agent's to check. Twice the bytes take twice as long on any machine
    const vm = vmSpec({ name: 'dirty', memoryMiB: 512, workload: { dirtyRateMiBps: 256, workingSetMiB: 384 } });
    const policy: MigrationPolicyInput = { downtimeLimitMs: 300, autoConverge: true, progressTimeoutSec: 120, completionTimeoutPerGiBSec: 600 };
    await src.startVm(vm);
    // the guest writes its range before the move starts: on a quiet machine a stream started while it still
    // boots sends 256 MiB of zero pages and switches over before the agent has measured anything
    await untilGuestDirties(src, vm.id);
    let listening: string | undefined;
    const cmd = commands(vm, policy, () => listening);
    listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
    const { sink } = progressLog();
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
    await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink);
    await src.pauseSource(vm.id);
    const [stats] = await Promise.all([src.transferState(cmd(6, 'transfer-state', 'source')), dst.confirmIncoming(cmd(6, 'transfer-state', 'target'))]);
    await dst.resumeTarget(vm.id);
    const decided = src.switchoverOf(vm.id)!;
    await src.stopSource(vm.id);
    if (process.env.FLEXMIG_TEST_VERBOSE) console.log('dirty switchover', { stats, decided });

    // the decision, with the real QEMU figures: QEMU stopped the guest only once what it had left, at the
    // bandwidth the agent measured, fit the policy's limit
    // (the whole record on a failure: the figures tell which of QEMU's inputs ran ahead of the agent's)
    expect(decided).toMatchObject({ limitMs: 300, fits: true, realBytesPerSec: expect.any(Number) });
    expect(decided.realBytesPerSec).toBeGreaterThan(0);
    expect(decided.qemuLimitMs).toBeLessThanOrEqual(300);
    expect(switchoverFits(decided.remainingBytes, decided.realBytesPerSec, 300)).toBe(true);
    // and QEMU's own downtime figure (the 7.2 stats race waited out) kept the policy's limit
    expect(stats.downtimeMs).toBeGreaterThan(0);
    expect(stats.downtimeMs).toBeLessThanOrEqual(300);
    const check = await dst.checkMemory(vm.id);
    expect(check).toEqual(expect.objectContaining({ ok: true, badPages: 0, advancedAfterCheck: true }));
  });

  it('(g) a guest whose dirty memory never fits the limit, without auto-converge: no switchover at all, NOT_CONVERGING, the VM runs on the source', async () => {
    // It rewrites all 128 MiB of its range without a spin delay: every pass ends with the whole range dirty.
    // Within a 100 ms limit that would need over 2 GiB/s (25 ms reserve, 0.8 margin), far above the 64 MiB/s
    // cap. The agent's limit keeps QEMU from switching over, and the policy has no lever (no auto-converge,
    // no post-copy, no downtime step): after 3 such passes the transfer fails.
    // Uncapped, as this test first ran, the stream sometimes met a guest that had written nothing during
    // it (QEMU switched over with 0 bytes left and no rate measured, 1 run in 3 on CI, cause not found under
    // TCG); capped, each pass lasts 3 s and the guest rewrites its range hundreds of times in it.
    const src = driver({ portRange: undefined, pollIntervalMs: 50, notConvergingPasses: 3 });
    const dst = driver({ portRange: undefined });
    const vm = vmSpec({ name: 'hot', memoryMiB: 192, workload: { dirtyRateMiBps: 100_000, workingSetMiB: 128 } });
    await src.startVm(vm);
    await untilGuestDirties(src, vm.id); // it dirties its range before the move (see (f))
    let listening: string | undefined;
    const cmd = commands(vm, { bandwidthMiBps: 64, downtimeLimitMs: 100, autoConverge: false, postCopy: false, progressTimeoutSec: 120, completionTimeoutPerGiBSec: 600 }, () => listening);
    listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
    const { sink } = progressLog();
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
    const err = await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlexmigError);
    expect((err as FlexmigError).details?.code).toBe('NOT_CONVERGING');
    expect((err as FlexmigError).message).toMatch(/auto-converge is not allowed.*keeps running on the source/s);
    expect(src.switchoverOf(vm.id)).toBeUndefined(); // QEMU never stopped the guest
    expect(await status(src, vm.id)).toBe('running');
    await src.cancelTransfer(vm.id);
    await dst.destroyIncoming(vm.id);
    expect((await src.checkMemory(vm.id)).ok).toBe(true);
  });

  it('(c) a cancel during sync-memory leaves the VM running on the source', async () => {
    const src = driver();
    const dst = driver();
    const vm = vmSpec({ workload: { dirtyRateMiBps: 100, workingSetMiB: 24 } });
    await src.startVm(vm);
    const cmd = commands(vm, { bandwidthMiBps: 16, downtimeLimitMs: 100, autoConverge: false, progressTimeoutSec: 120 });
    const { seen, sink } = progressLog();
    await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
    const sync = src.syncMemory(cmd(4, 'sync-memory', 'source'), sink).catch((e: unknown) => e);
    const n = seen.length;
    while (seen.length === n) await sleep(50);
    await src.cancelTransfer(vm.id);
    const err = await sync;
    expect(err).toBeInstanceOf(FlexmigError);
    expect((err as FlexmigError).details?.code).toBe('CANCELLED');
    expect(await status(src, vm.id)).toBe('running');
    await dst.destroyIncoming(vm.id);
    expect(dst.listVms()).toEqual([]);
    expect((await src.checkMemory(vm.id)).ok).toBe(true);
  });

  it('(d) the target QEMU killed mid-transfer: the source notices and the VM keeps running there', async () => {
    const src = driver();
    const dst = driver();
    const vm = vmSpec({ workload: { dirtyRateMiBps: 100, workingSetMiB: 24 } });
    await src.startVm(vm);
    const cmd = commands(vm, { bandwidthMiBps: 16, downtimeLimitMs: 100, autoConverge: false, progressTimeoutSec: 120 });
    const { sink } = progressLog();
    await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    const dstPid = dst.vmInfo(vm.id)!.pid;
    await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
    const sync = src.syncMemory(cmd(4, 'sync-memory', 'source'), sink).catch((e: unknown) => e);
    process.kill(dstPid, 'SIGKILL');
    const err = await sync;
    expect(err).toBeInstanceOf(FlexmigError);
    expect((err as FlexmigError).message).toMatch(/failed|moved no byte/);
    expect(await status(src, vm.id)).toBe('running');
    await src.cancelTransfer(vm.id);
    await dst.destroyIncoming(vm.id);
    expect(dst.listVms()).toEqual([]);
    expect(leftovers(dirs[1]!)).toEqual([]);
    expect((await src.checkMemory(vm.id)).ok).toBe(true);
  });

  it("step 2's compensation meets the incoming QEMU ending under its question (its stream broke): nothing runs there, so the copy's files are removed and the compensation succeeds", async () => {
    // what a cancel leaves: the target QEMU exits by itself ("load of migration failed") while the
    // compensation asks whether the guest runs there; here it ends as the question is sent
    const dst = driver();
    const vm = vmSpec();
    await dst.prepareIncoming(commands(vm)(2, 'transfer-config', 'target'));
    const { pid, qmpSocket } = dst.vmInfo(vm.id)!;
    const original = QmpClient.prototype.execute;
    const asked: string[] = [];
    jest.spyOn(QmpClient.prototype, 'execute').mockImplementation(function (this: QmpClient, command: string, ...rest: unknown[]) {
      if (this.socketPath === qmpSocket && command === 'query-status') {
        asked.push(command);
        process.kill(pid, 'SIGKILL');
      }
      return (original as (...a: unknown[]) => Promise<unknown>).call(this, command, ...rest);
    } as never);
    try {
      await dst.destroyIncoming(vm.id);
    } finally {
      jest.restoreAllMocks();
    }
    expect(asked).toEqual(['query-status']); // it did meet the end under its question
    expect(dst.listVms()).toEqual([]);
    expect(leftovers(dirs[0]!)).toEqual([]);
    expect(qemusNaming(qmpSocket)).toEqual([]);
  });

  it('(e) a baseline the host cannot run with enforce is refused before any copy, naming the features', async () => {
    const dst = driver();
    const candidates = ['Haswell', 'Icelake', 'EPYC-Genoa', 'SapphireRapids'];
    let refused: FlexmigError | undefined;
    let baseline = '';
    for (const b of candidates) {
      const vm = vmSpec({ cpuBaseline: b });
      const e = await dst.prepareIncoming(commands(vm)(2, 'transfer-config', 'target')).then(
        () => undefined,
        (x: unknown) => x as FlexmigError,
      );
      if (e && ((e.details?.missingFeatures as string[] | undefined) ?? []).length > 0) {
        refused = e;
        baseline = b;
        break;
      }
      await dst.destroyIncoming(vm.id);
    }
    if (!refused) {
      console.warn(`this host runs all of ${candidates.join(', ')} under ${ACCEL}: nothing to refuse`);
      return;
    }
    expect(refused.code).toBe('CPU_INCOMPATIBLE');
    expect(refused.message).toContain(baseline);
    expect((refused.details?.missingFeatures as string[]).length).toBeGreaterThan(0);
    for (const f of refused.details?.missingFeatures as string[]) expect(refused.message).toContain(f);
    expect(dst.listVms()).toEqual([]);
    expect(leftovers(dirs[0]!).filter((f) => !f.startsWith('probe'))).toEqual([]);
    await expect(dst.startVm(vmSpec({ cpuBaseline: baseline }))).rejects.toMatchObject({ code: 'CPU_INCOMPATIBLE' });
  });

  describe('an agent killed while its QEMU migrates on (fault matrix: qemu:kill-source-agent@transfer-memory)', () => {
    // The agent dies after step 4 returned: its QEMU stopped the guest at pre-switchover and ran the final
    // copy (the monitor starts it there); the target holds it paused (-S), so the source is still the VM.
    async function killedAtPreSwitchover(step5Ran: boolean) {
      const src = driver();
      const dst = driver();
      const vm = vmSpec();
      await src.startVm(vm);
      const cmd = commands(vm);
      const { sink } = progressLog();
      await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'));
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
      await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink);
      if (step5Ran) await src.pauseSource(vm.id);
      const pid = src.vmInfo(vm.id)!.pid;
      await src.close(); // the kill: the QEMU stays, nobody drives its stream
      return { vm, pid, restarted: driver({}, dirs[0]) };
    }

    it('the restarted agent cancels the stream it no longer drives and the guest runs on the source again', async () => {
      const { vm, pid, restarted } = await killedAtPreSwitchover(false);
      // checkMemory refuses a guest that does not run: it must run, intact, in the same QEMU
      expect(await restarted.checkMemory(vm.id)).toEqual(expect.objectContaining({ ok: true, badPages: 0, advancedAfterCheck: true }));
      expect(await status(restarted, vm.id)).toBe('running');
      expect(restarted.vmInfo(vm.id)).toEqual(expect.objectContaining({ pid, alive: true }));
      expect(restarted.vmInfo(vm.id)!.migrationId).toBeUndefined();
    });

    it('after step 5 it leaves the guest paused: only the saga resumes it (compensation of step 5)', async () => {
      const { vm, restarted } = await killedAtPreSwitchover(true);
      await expect(restarted.checkMemory(vm.id)).rejects.toMatchObject({ code: 'VM_NOT_RUNNING' });
      expect(await status(restarted, vm.id)).toBe('paused');
      await restarted.resumeSource(vm.id);
      expect((await restarted.checkMemory(vm.id)).ok).toBe(true);
      expect(await status(restarted, vm.id)).toBe('running');
    });
  });

  describe('a target agent killed after step 6 (fault matrix: qemu:kill-target-agent@resume-target)', () => {
    /** Steps 2–6 of a migration; the target's QEMU then holds the guest's state, paused. */
    async function throughStep6() {
      const src = driver({ portRange: undefined });
      const dst = driver({ portRange: undefined });
      const vm = vmSpec();
      await src.startVm(vm);
      let listening: string | undefined;
      const cmd = commands(vm, {}, () => listening);
      const { sink } = progressLog();
      listening = (await dst.prepareIncoming(cmd(2, 'transfer-config', 'target'))).incomingAddress;
      await src.transferMemory(cmd(3, 'transfer-memory', 'source'), sink);
      await src.syncMemory(cmd(4, 'sync-memory', 'source'), sink);
      await src.pauseSource(vm.id);
      await src.transferState(cmd(6, 'transfer-state', 'source'));
      await dst.confirmIncoming(cmd(6, 'transfer-state', 'target'));
      return { src, dst, vm, cmd, socket: join(dirs[1]!, `${vm.id}.qmp`) };
    }

    it('the restarted agent leaves the guest paused (the saga may still resume the source), and step 7 resumes it', async () => {
      const { src, dst, vm } = await throughStep6();
      await dst.close(); // the kill, before step 7
      const restarted = driver({}, dirs[1]);
      expect(restarted.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'incoming' })]);
      // attaching settles nothing of an incoming VM: its guest is not resumed behind the saga's back
      await expect(restarted.checkMemory(vm.id)).rejects.toMatchObject({ code: 'VM_NOT_RUNNING' });
      expect(await status(restarted, vm.id)).toBe('incoming');
      const before = Date.now();
      const resumedAt = await restarted.resumeTarget(vm.id);
      expect(resumedAt.getTime()).toBeGreaterThanOrEqual(before);
      expect(await restarted.checkMemory(vm.id)).toEqual(expect.objectContaining({ ok: true, badPages: 0 }));
      await src.stopSource(vm.id);
    });

    it('step 7 retried after the agent died between `cont` and recording it: the running guest is taken as resumed', async () => {
      const { src, dst, vm, socket } = await throughStep6();
      // the kill: QEMU gets `cont` and resumes the guest; the agent never hears back, so it records nothing
      const original = QmpClient.prototype.execute as (this: QmpClient, ...args: unknown[]) => Promise<unknown>;
      let contSent = false;
      const spy = jest.spyOn(QmpClient.prototype, 'execute').mockImplementation(function (this: QmpClient, ...args: unknown[]) {
        if (this.socketPath !== socket || args[0] !== 'cont') return original.apply(this, args);
        contSent = true;
        void original.apply(this, args).catch(() => undefined);
        return new Promise<never>(() => undefined);
      } as never);
      void dst.resumeTarget(vm.id).catch(() => undefined);
      for (let i = 0; i < 100 && !contSent; i++) await sleep(50);
      spy.mockRestore();
      expect(contSent).toBe(true);
      await sleep(500); // QEMU acts on `cont` at once; the agent is gone before it reads the answer
      await dst.close();

      const restarted = driver({}, dirs[1]);
      const before = Date.now();
      const resumedAt = await restarted.resumeTarget(vm.id);
      // no wait for a RESUME that a second `cont` never brings (10 s, then an error, at every retry)
      expect(Date.now() - before).toBeLessThan(5_000);
      expect(resumedAt.getTime()).toBeGreaterThanOrEqual(before);
      expect(await status(restarted, vm.id)).toBe('running');
      expect(await restarted.checkMemory(vm.id)).toEqual(expect.objectContaining({ ok: true, badPages: 0 }));
      // recorded: a repeat answers the same, and the VM is this host's now
      await expect(restarted.resumeTarget(vm.id)).resolves.toEqual(resumedAt);
      expect(restarted.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'running' })]);
      await src.stopSource(vm.id);
    });

    it('step 6 retried after the agent recorded the resume but died before its ledger did: answered resumed, and the copy is never destroyed', async () => {
      const { src, dst, vm, cmd } = await throughStep6();
      const migration = cmd(6, 'transfer-state', 'target');
      const resumedAt = await dst.resumeTarget(vm.id);
      await dst.close(); // the kill: the VM's state file says resumed, the step ledger (not the driver's) never heard
      const restarted = driver({}, dirs[1]);
      // the retried target half of step 6: no "no incoming VM" refusal, the same resume time
      await expect(restarted.confirmIncoming({ ...migration, attempt: 2 })).resolves.toBeUndefined();
      await expect(restarted.resumeTarget(vm.id)).resolves.toEqual(resumedAt);
      // a rollback that reaches this copy is refused, never reported done over a copy that stays
      await expect(restarted.destroyIncoming(vm.id)).rejects.toMatchObject({ code: 'CONFLICT', retryable: false });
      expect(await status(restarted, vm.id)).toBe('running');
      await src.stopSource(vm.id);
    });
  });

  it('step 2 retried after the agent died while starting the incoming QEMU: one incoming QEMU, not two (fault matrix: qemu:kill-target-agent@transfer-config)', async () => {
    const first = driver();
    const vm = vmSpec();
    const cmd = commands(vm);
    const socket = join(dirs[0]!, `${vm.id}.qmp`);
    // the kill: QEMU started, the agent gone before it reached QMP (so before it recorded the VM)
    const hang = hangQmp('connect', socket);
    void first.prepareIncoming(cmd(2, 'transfer-config', 'target')).catch(() => undefined);
    for (let i = 0; i < 600 && qemusNaming(socket).length === 0; i++) await sleep(50);
    const orphan = qemusNaming(socket);
    expect(orphan).toHaveLength(1);
    hang.mockRestore();

    const restarted = driver({}, dirs[0]);
    const { incomingAddress } = await restarted.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    expect(incomingAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const pid = restarted.vmInfo(vm.id)!.pid;
    for (let i = 0; i < 100 && qemusNaming(socket).length > 1; i++) await sleep(50);
    expect(qemusNaming(socket)).toEqual([pid]);
    expect(pidAlive(orphan[0]!)).toBe(false);
    expect(restarted.listVms()).toEqual([expect.objectContaining({ vmId: vm.id, state: 'incoming', migrationId: cmd(2, 'transfer-config', 'target').migrationId })]);
    // and a repeat of step 2 reuses it
    await expect(restarted.prepareIncoming(cmd(2, 'transfer-config', 'target'))).resolves.toEqual({ incomingAddress });
    expect(qemusNaming(socket)).toEqual([pid]);
  });

  it('step 2 retried after the agent died before its incoming QEMU listened: that QEMU is replaced, not kept beside another', async () => {
    const first = driver();
    const vm = vmSpec();
    const cmd = commands(vm);
    const socket = join(dirs[0]!, `${vm.id}.qmp`);
    // the kill: QEMU up and recorded, the agent gone before migrate-incoming (no one was told an address)
    const hang = hangQmp('execute', socket, (command) => command === 'migrate-incoming');
    void first.prepareIncoming(cmd(2, 'transfer-config', 'target')).catch(() => undefined);
    for (let i = 0; i < 600 && !hang.mock.calls.some((c) => c[0] === 'migrate-incoming'); i++) await sleep(50);
    hang.mockRestore();
    const orphan = first.vmInfo(vm.id)!.pid;
    await first.close();

    const restarted = driver({}, dirs[0]);
    expect(restarted.vmInfo(vm.id)).toEqual(expect.objectContaining({ pid: orphan, alive: true }));
    const { incomingAddress } = await restarted.prepareIncoming(cmd(2, 'transfer-config', 'target'));
    expect(incomingAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const pid = restarted.vmInfo(vm.id)!.pid;
    expect(pid).not.toBe(orphan);
    expect(pidAlive(orphan)).toBe(false);
    expect(qemusNaming(socket)).toEqual([pid]);
  });

  it('leaves no QEMU of its own behind', async () => {
    // its own: one that names a run directory of this file's tests (another run of the tests on the machine has its own)
    const ours = () =>
      (spawnSync('pgrep', ['-f', 'fmq-']).stdout?.toString().trim() ?? '')
        .split('\n')
        .filter(Boolean)
        .map(Number)
        .filter((pid) => pid !== process.pid && existsSync(`/proc/${pid}`) && everyRunDir.some((dir) => isOurQemu(pid, `${dir}/`)));
    // a QEMU killed by the last test's cleanup may still be exiting on a loaded machine: give it a moment,
    // then name what is left (its command line says which test started it)
    for (let i = 0; i < 50 && ours().length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    const cmdline = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').slice(0, 300);
      } catch {
        return '(gone)';
      }
    };
    const left = ours().map((pid) => `${pid}: ${cmdline(pid)}`);
    expect(left).toEqual([]);
  });
});
