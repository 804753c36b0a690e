import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv } from './config';
import { SimDriver } from './drivers/sim.driver';
import { type CopyState, fenceAction } from './migration-fence';
import { MigrationStepsService } from './migration-steps.service';

const vmId = '00000000-0000-4000-8000-000000000001';

describe('fenceAction: what an operator resolution does with this host copy', () => {
  it.each<[CopyState, string]>([
    ['running', 'pause'],
    ['incoming', 'destroy'],
    ['paused', 'none'],
    ['stopped', 'none'],
    ['absent', 'none'],
  ])('fence: a %s copy → %s (a copy that ran is never destroyed)', (copy, action) => {
    expect(fenceAction('fence', copy, false, vmId)).toBe(action);
    expect(fenceAction('fence', copy, true, vmId)).toBe(action);
  });

  it('keep: a running copy is left running; a paused one is resumed only when asked to', () => {
    expect(fenceAction('keep', 'running', true, vmId)).toBe('none');
    expect(fenceAction('keep', 'paused', true, vmId)).toBe('resume');
    expect(fenceAction('keep', 'paused', false, vmId)).toBe('none');
  });

  it.each<[CopyState, string]>([
    ['incoming', ErrorCode.Conflict],
    ['stopped', ErrorCode.NotFound],
    ['absent', ErrorCode.NotFound],
  ])('keep: a %s copy cannot be the VM (%s)', (copy, code) => {
    const r = fenceAction('keep', copy, true, vmId);
    expect(r).toBeInstanceOf(FlexmigError);
    expect((r as FlexmigError).code).toBe(code);
    expect((r as FlexmigError).message).toContain(vmId);
  });
});

describe('MigrationStepsService.fence (agent.{hostId}.migration.fence) on the sim driver', () => {
  const spec = (id: string) => ({ id, name: 'vm-f', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' });
  const setup = () => {
    const driver = new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });
    // no NATS: fence asks nobody
    const steps = new MigrationStepsService(driver, {} as never, { HOST_ID: 'host-f' } as AgentEnv);
    return { driver, steps };
  };
  const state = (d: SimDriver, id: string) => d.listVms().find((v) => v.vmId === id)?.state ?? 'absent';

  it('fences a running copy by pausing it (never destroying it), then refuses every later step of that migration', async () => {
    const { driver, steps } = setup();
    const id = randomUUID();
    const migrationId = randomUUID();
    await driver.startVm(spec(id));
    const r = await steps.fence({ migrationId, vmId: id, role: 'source', outcome: 'fence', resume: false, reason: 'split brain, kept on target' });
    expect(r).toMatchObject({ before: 'running', after: 'paused', action: 'paused' });
    expect(state(driver, id)).toBe('paused');
    // a stale compensation (resume the source) is refused: the copy stays paused
    await expect(steps.compensate({ migrationId, step: 5, stepName: 'pause-source', compensation: 'resume-source', role: 'source', vmId: id })).rejects.toMatchObject({ code: ErrorCode.Conflict, message: expect.stringContaining('was resolved by an operator') });
    expect(state(driver, id)).toBe('paused');
    // idempotent
    await expect(steps.fence({ migrationId, vmId: id, role: 'source', outcome: 'fence', resume: false, reason: 'again' })).resolves.toMatchObject({ before: 'paused', action: 'none' });
  });

  it('keeps a paused copy by resuming it when asked, and leaves it paused when not', async () => {
    const { driver, steps } = setup();
    const id = randomUUID();
    await driver.startVm(spec(id));
    await driver.pauseSource(id);
    await expect(steps.fence({ migrationId: randomUUID(), vmId: id, role: 'source', outcome: 'keep', resume: false, reason: 'r' })).resolves.toMatchObject({ after: 'paused', action: 'none' });
    await expect(steps.fence({ migrationId: randomUUID(), vmId: id, role: 'source', outcome: 'keep', resume: true, reason: 'r' })).resolves.toMatchObject({ before: 'paused', after: 'running', action: 'resumed' });
  });

  it('refuses to keep a copy this host does not have, and records nothing', async () => {
    const { steps } = setup();
    const migrationId = randomUUID();
    const e = await steps.fence({ migrationId, vmId: randomUUID(), role: 'target', outcome: 'keep', resume: true, reason: 'r' }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.NotFound });
  });
});
