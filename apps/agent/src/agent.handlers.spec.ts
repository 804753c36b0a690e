import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { CheckVmMemory, ErrorCode, FlexmigError, contractForSubject, fillSubject } from '@flexmig/contracts';
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
