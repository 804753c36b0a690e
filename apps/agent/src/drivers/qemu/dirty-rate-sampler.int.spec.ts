/**
 * The dirty-rate sampler with REAL QEMU (TCG unless FLEXMIG_TEST_QEMU_ACCEL says otherwise): QMP
 * calc-dirty-rate on the project's guest, which writes its working set at the rate its workload asks.
 * Skips only when qemu-system-x86_64 is not installed.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SampleDirtyRate, VmSpec } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { AgentEnv } from '../../config';
import { PredictionHandlers } from '../../prediction.handlers';
import { AccelSetting } from './cpu-probe';
import { readResidentGuestBytes } from './guest-residency';
import { QemuDriver } from './qemu.driver';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) console.warn(`SKIPPED: the dirty-rate sampler tests need ${BINARY} (apt-get install -y qemu-system-x86)`);
const d = haveQemu ? describe : describe.skip;
const ACCEL = (process.env.FLEXMIG_TEST_QEMU_ACCEL ?? 'tcg') as AccelSetting;
const MiB = 1024 * 1024;

d('dirty-rate sampling with QMP calc-dirty-rate on a real guest', () => {
  jest.setTimeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fmdr-'));
  let drv: QemuDriver;

  beforeAll(() => {
    drv = new QemuDriver({ binary: BINARY, accel: ACCEL, runDir: dir, listenHost: '127.0.0.1', dirtyRateIntervalMs: 0 });
  });
  afterAll(async () => {
    await drv?.destroyAll().catch(() => undefined);
    await drv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const spec = (workload: VmSpec['workload']): VmSpec => ({ id: randomUUID(), name: 'guest', memoryMiB: 256, vcpus: 1, cpuBaseline: 'Westmere', workload });

  it('given a guest writing 64 MiB/s over 96 MiB and an idle one, then the agent reports real rates and the dirtying guest\'s working set', async () => {
    const busy = spec({ dirtyRateMiBps: 64, workingSetMiB: 96 });
    const idle = spec({ dirtyRateMiBps: 0 });
    await drv.startVm(busy);
    await drv.startVm(idle);
    // the busy guest has written its 96 MiB once (the sampler reads residency before its windows), however
    // slow the machine; the idle one had the same time
    const resident = async (id: string) => (await readResidentGuestBytes(drv.vmInfo(id)!.pid, 256 * MiB)) ?? 0;
    const deadline = Date.now() + 60_000;
    while ((await resident(busy.id)) < 96 * MiB && Date.now() < deadline) await sleep(200);
    const handlers = new PredictionHandlers(drv, { HOST_ID: 'h1' } as AgentEnv);
    const b = SampleDirtyRate.reply.parse(await handlers.dirtyRate({ vmId: busy.id }));
    const i = SampleDirtyRate.reply.parse(await handlers.dirtyRate({ vmId: idle.id }));
    if (process.env.FLEXMIG_TEST_VERBOSE) console.log('busy', b, 'idle', i);
    expect(b).toMatchObject({ vmId: busy.id, hostId: 'h1', origin: 'calc-dirty-rate', memoryBytes: 256 * MiB });
    expect(b.detail).toContain('calc-dirty-rate');
    // a real, non-zero rate for the dirtying guest, above the idle guest's. How fast a TCG guest really writes
    // depends on the CPU it gets (on a loaded machine far below the 64 MiB/s asked), so no absolute floor here.
    expect(b.dirtyRateBytesPerSec).toBeGreaterThan(0);
    expect(b.dirtyRateBytesPerSec).toBeGreaterThan(i.dirtyRateBytesPerSec);
    // its writes fall in its 96 MiB (page sampling: a statistical estimate, hence the margin), and the 4 s
    // window holds at least what the 1 s window saw
    expect(b.workingSetBytes).toBeLessThan(160 * MiB);
    expect(b.workingSetBytes).toBeGreaterThanOrEqual(b.dirtyRateBytesPerSec * 1);
    expect(i.workingSetBytes).toBeLessThan(b.workingSetBytes);
    // what a first pass would send: the dirtying guest has written its 96 MiB, the idle one its 1 MiB and what
    // firmware and boot touched (read before the sampling's own reads, which fault huge pages in on some kernels)
    expect(b.residentBytes).toBeGreaterThanOrEqual(96 * MiB);
    expect(b.residentBytes).toBeLessThanOrEqual(256 * MiB);
    expect(i.residentBytes).toBeLessThan(32 * MiB);
    expect(b.detail).toMatch(/MiB of 256 MiB resident/);
  });

  it('given a sample, then it is answered again until asked fresh or older than maxAgeMs', async () => {
    const vm = spec({ dirtyRateMiBps: 32, workingSetMiB: 64 });
    await drv.startVm(vm);
    const first = await drv.dirtyRate(vm.id, {});
    expect(await drv.dirtyRate(vm.id, {})).toBe(first);
    expect(await drv.dirtyRate(vm.id, { maxAgeMs: 3_600_000 })).toBe(first);
    const fresh = await drv.dirtyRate(vm.id, { fresh: true });
    expect(fresh).not.toBe(first);
    expect(fresh.measuredAt.getTime()).toBeGreaterThan(first.measuredAt.getTime());
    await expect(drv.dirtyRate(randomUUID(), {})).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
