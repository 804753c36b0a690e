import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { CheckVmCpu, CheckVmMemory, ErrorCode, FlexmigError, QueryStreamEnd, contractForSubject, fillSubject } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentHandlers } from './agent.handlers';
import { AgentEnv } from './config';
import { GuestMemoryCheck, HypervisorDriver } from './drivers/driver';
import { SimDriver } from './drivers/sim.driver';
import { MigrationStepsService } from './migration-steps.service';

const env = { HOST_ID: 'host-x' } as AgentEnv;
const steps = {} as MigrationStepsService;
const sim = () =>
  new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });

/** A driver with a guest: the sim driver plus a canned checkMemory (the real one is covered with QEMU in qemu.driver.int.spec.ts). */
function withCheck(result: GuestMemoryCheck | Error): HypervisorDriver & { asked: string[] } {
  const d = sim() as unknown as HypervisorDriver & { asked: string[] };
  d.asked = [];
  d.checkMemory = async (vmId: string) => {
    d.asked.push(vmId);
    if (result instanceof Error) throw result;
    return result;
  };
  return d;
}

describe('CheckVmMemory (agent.{hostId}.vm.check-memory)', () => {
  it('is a contract of its own on the host subject', () => {
    expect(CheckVmMemory.subject).toBe('agent.{hostId}.vm.check-memory');
    expect(contractForSubject(CheckVmMemory.subject)).toBe(CheckVmMemory);
    expect(fillSubject(CheckVmMemory.subject, { hostId: 'host-x' })).toBe('agent.host-x.vm.check-memory');
    expect(CheckVmMemory.request.safeParse({ vmId: 'not-a-uuid' }).success).toBe(false);
  });

  it('the sim driver answers VALIDATION_FAILED: it has no guest memory to check', async () => {
    const h = new AgentHandlers(sim(), steps, env);
    const err = await h.checkMemory({ vmId: randomUUID() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlexmigError);
    expect((err as FlexmigError).code).toBe(ErrorCode.ValidationFailed);
    expect((err as FlexmigError).message).toMatch(/the sim driver has no guest memory to check/);
  });

  it('an intact, advancing guest: ok, with the pages checked', async () => {
    const vmId = randomUUID();
    const d = withCheck({ ok: true, pages: 65_536, badPages: 0, boundaryPage: 321, examples: [], advancedAfterCheck: true });
    const reply = await new AgentHandlers(d, steps, env).checkMemory({ vmId });
    expect(d.asked).toEqual([vmId]);
    expect(CheckVmMemory.reply.parse(reply)).toEqual({ vmId, ok: true, pagesChecked: 65_536, badPages: 0, guestAdvancing: true, detail: expect.stringMatching(/65536 pages/) });
  });

  it('bad pages or a guest that no longer advances: not ok, and the detail says why', async () => {
    const bad = await new AgentHandlers(
      withCheck({ ok: false, pages: 256, badPages: 2, boundaryPage: 10, examples: [{ address: 0x105000, value: 7, previous: 9 }], advancedAfterCheck: true }),
      steps,
      env,
    ).checkMemory({ vmId: randomUUID() });
    expect(bad).toEqual(expect.objectContaining({ ok: false, badPages: 2, pagesChecked: 256 }));
    expect(bad.detail).toMatch(/2 of 256 pages break the pattern.*0x105000/);
    const stuck = await new AgentHandlers(withCheck({ ok: true, pages: 256, badPages: 0, boundaryPage: null, examples: [], advancedAfterCheck: false }), steps, env).checkMemory({ vmId: randomUUID() });
    expect(stuck).toEqual(expect.objectContaining({ ok: false, badPages: 0, guestAdvancing: false }));
    expect(stuck.detail).toMatch(/did NOT advance/);
  });

  it("the driver's error travels up unchanged (e.g. a VM not on this host)", async () => {
    const e = new FlexmigError(ErrorCode.NotFound, 'VM x is not on this host');
    await expect(new AgentHandlers(withCheck(e), steps, env).checkMemory({ vmId: randomUUID() })).rejects.toBe(e);
  });
});

describe('CheckVmCpu (agent.{hostId}.vm.cpu-check) with the sim driver: answers from its model', () => {
  const vm = (cpuBaseline: string) => ({ id: randomUUID(), name: 'v', memoryMiB: 1024, vcpus: 1, cpuBaseline });

  it('is a contract of its own on the host subject, with bounded input', () => {
    expect(contractForSubject(CheckVmCpu.subject)).toBe(CheckVmCpu);
    expect(fillSubject(CheckVmCpu.subject, { hostId: 'host-x' })).toBe('agent.host-x.vm.cpu-check');
    expect(CheckVmCpu.request.safeParse({ vmId: randomUUID(), baseline: 'x'.repeat(65) }).success).toBe(false);
    expect(CheckVmCpu.request.safeParse({ vmId: randomUUID(), baseline: 'Westmere', extra: 1 }).success).toBe(false);
  });

  it('a VM started with the baseline inventory recorded: ok, source model, hypervisor an exception', async () => {
    const d = sim();
    const spec = vm('SandyBridge');
    await d.startVm(spec);
    const reply = CheckVmCpu.reply.parse(await new AgentHandlers(d, steps, env).checkCpu({ vmId: spec.id, baseline: 'SandyBridge' }));
    expect(reply).toMatchObject({ vmId: spec.id, hostId: 'host-x', ok: true, baseline: 'SandyBridge', source: 'model', missing: [], extra: [] });
    expect(reply.exceptions).toEqual([{ feature: 'hypervisor', seen: true, reason: 'hypervisor-supplied' }]);
    expect(reply).not.toHaveProperty('sample');
  });

  it('a guest presenting another baseline than inventory recorded: not ok, naming what differs', async () => {
    const d = sim();
    const spec = vm('IvyBridge');
    await d.startVm(spec);
    const reply = await new AgentHandlers(d, steps, env).checkCpu({ vmId: spec.id, baseline: 'SandyBridge' });
    expect(reply.ok).toBe(false);
    expect(reply.extra).toEqual(expect.arrayContaining(['f16c', 'rdrand', 'fsgsbase']));
    expect(reply.missing).toEqual([]);
  });

  it('a VM this host does not run: NOT_FOUND', async () => {
    await expect(new AgentHandlers(sim(), steps, env).checkCpu({ vmId: randomUUID(), baseline: 'Westmere' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('QueryStreamEnd (agent.{hostId}.migration.stream-end)', () => {
  it("answers with the driver's word, and what of the guest's memory held data when the driver knows it (the reply keeps its contract)", async () => {
    const migrationId = randomUUID();
    const vmId = randomUUID();
    for (const residentBytes of [96 * 2 ** 20, undefined]) {
      const d = sim() as unknown as HypervisorDriver;
      d.streamEnd = async () => ({ status: 'completed', detail: 'done', ...(residentBytes !== undefined ? { residentBytes } : {}) });
      const reply = await new AgentHandlers(d, steps, env).streamEnd({ migrationId, vmId, waitMs: 0 });
      expect(QueryStreamEnd.reply.parse(reply)).toEqual({ migrationId, status: 'completed', detail: 'done', ...(residentBytes !== undefined ? { residentBytes } : {}) });
    }
  });

  it('refuses a reply whose residentBytes is not a whole number of bytes (a driver bug, never sent as such)', () => {
    expect(QueryStreamEnd.reply.safeParse({ migrationId: randomUUID(), status: 'completed', detail: '', residentBytes: -1 }).success).toBe(false);
    expect(QueryStreamEnd.reply.safeParse({ migrationId: randomUUID(), status: 'completed', detail: '', residentBytes: 1.5 }).success).toBe(false);
  });
});
