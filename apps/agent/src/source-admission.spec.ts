import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { ErrorCode, GetReservation, MigrationPolicySchema, QueryMigration, type StepCommand, stepNumber } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv } from './config';
import { SimDriver } from './drivers/sim.driver';
import { MigrationStepsService } from './migration-steps.service';

/**
 * The source's entry step (3) asks inventory once: the reservation's answer carries the target's registered
 * migration address, which replaces the command's `targetAddress` (participation.ts). Without it (an
 * inventory older than that field) nothing is sent: an agent may not read host views.
 */
describe("the source's entry step: where its memory may go", () => {
  const vm = { id: randomUUID(), name: 'vm-a', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
  const setup = async (reply: { targetMigrationAddress?: string | null }) => {
    const driver = new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });
    await driver.startVm(vm);
    const migrationId = randomUUID();
    const reservation = { migrationId, vmId: vm.id, hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString() };
    const asked: string[] = [];
    const bus = {
      request: async (contract: { subject: string }) => {
        asked.push(contract.subject);
        if (contract === GetReservation) return { reservation, ...reply };
        // the target holds the incoming VM (its step 2 done)
        if (contract === QueryMigration) return { migrationId, steps: [{ step: stepNumber('transfer-config'), role: 'target', status: 'completed' }] };
        throw new Error(`unexpected request ${contract.subject}`);
      },
      publish: () => undefined,
    };
    const streamedTo: (string | undefined)[] = [];
    const transfer = driver.transferMemory.bind(driver);
    driver.transferMemory = (c, p) => {
      streamedTo.push(c.targetAddress);
      return transfer(c, p);
    };
    const steps = new MigrationStepsService(driver, bus as never, { HOST_ID: 'src' } as AgentEnv);
    const cmd = (over: Partial<StepCommand> = {}): StepCommand => ({
      migrationId,
      step: 3,
      stepName: 'transfer-memory',
      attempt: 1,
      role: 'source',
      vm,
      sourceHostId: 'src',
      targetHostId: 'dst',
      targetAddress: 'forged.example:1',
      policy: MigrationPolicySchema.parse({}),
      ...over,
    });
    return { steps, cmd, asked, streamedTo, reservation };
  };

  it("streams to the address in the reservation's answer, with no request for the target's host view", async () => {
    const { steps, cmd, asked, streamedTo } = await setup({ targetMigrationAddress: 'dst.example:49152' });
    const reply = await steps.run(cmd({ incomingAddress: 'dst.example:40001' }));
    expect(reply.stats).toMatchObject({ passes: 1 });
    expect(streamedTo).toEqual(['dst.example:49152']);
    expect(asked.sort()).toEqual([GetReservation.subject, QueryMigration.subject].sort());
  });

  it("refuses an incomingAddress on another host than the reservation's registered one, and sends nothing", async () => {
    const { steps, cmd, streamedTo } = await setup({ targetMigrationAddress: 'dst.example:49152' });
    await expect(steps.run(cmd({ incomingAddress: '203.0.113.9:4444' }))).rejects.toMatchObject({
      code: ErrorCode.UntrustedAddress,
      message: expect.stringContaining('registered migration address is dst.example:49152'),
    });
    expect(streamedTo).toEqual([]);
  });

  it.each([
    ['does not carry the address (an older inventory)', {}],
    ['names no address', { targetMigrationAddress: null }],
  ])("refuses the step and sends nothing when inventory's answer %s", async (_, reply) => {
    const { steps, cmd, asked, streamedTo } = await setup(reply);
    await expect(steps.run(cmd())).rejects.toMatchObject({
      code: ErrorCode.UntrustedAddress,
      message: expect.stringContaining('names no registered migration address for host dst'),
    });
    expect(streamedTo).toEqual([]);
    expect(asked.sort()).toEqual([GetReservation.subject, QueryMigration.subject].sort());
  });

  describe("with inventory's notice of the reservation (ReservationNotice), sent at step 1", () => {
    it('streams to the noticed address and asks inventory nothing (only the target, whether it holds the VM)', async () => {
      const { steps, cmd, asked, streamedTo, reservation } = await setup({ targetMigrationAddress: 'dst.example:1' });
      steps.noteReservation({ migrationId: reservation.migrationId, reservation, targetMigrationAddress: 'dst.example:49152' });
      await steps.run(cmd({ incomingAddress: 'dst.example:40001' }));
      expect(streamedTo).toEqual(['dst.example:49152']);
      expect(asked).toEqual([QueryMigration.subject]);
    });

    it('refuses a command for another VM or target than the noticed reservation, as it refuses one against the asked', async () => {
      const { steps, cmd, asked, streamedTo, reservation } = await setup({ targetMigrationAddress: 'dst.example:49152' });
      steps.noteReservation({ migrationId: reservation.migrationId, reservation, targetMigrationAddress: 'dst.example:49152' });
      await expect(steps.run(cmd({ targetHostId: 'elsewhere' }))).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      expect(streamedTo).toEqual([]);
      expect(asked).not.toContain(GetReservation.subject);
    });

    it('asks inventory when the notice said the reservation was released', async () => {
      const { steps, cmd, asked, reservation } = await setup({ targetMigrationAddress: 'dst.example:49152' });
      steps.noteReservation({ migrationId: reservation.migrationId, reservation, targetMigrationAddress: 'dst.example:49152' });
      steps.noteReservation({ migrationId: reservation.migrationId, reservation: null, targetMigrationAddress: null });
      await steps.run(cmd({ incomingAddress: 'dst.example:40001' }));
      expect(asked.sort()).toEqual([GetReservation.subject, QueryMigration.subject].sort());
    });
  });
});
