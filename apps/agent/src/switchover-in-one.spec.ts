import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { ErrorCode, GetReservation, MigrationPolicySchema, QueryStreamEnd, type StepCommand, type StreamEnd, stepName } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { AgentEnv } from './config';
import { SimDriver } from './drivers/sim.driver';
import { MigrationStepsService } from './migration-steps.service';

const vm = { id: randomUUID(), name: 'vm-s', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
/**
 * A target agent on the sim driver. Its requests: inventory's reservation at step 2, and at step 6 the source's
 * word on its stream (QueryStreamEnd), which `source` scripts answer by answer (the last one repeats).
 */
const setup = (switchoverAsQemu: boolean, source: StreamEnd[] = ['completed'], residentBytes?: number, held: Record<number, Promise<void>> = {}) => {
  const driver = new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0, switchoverAsQemu });
  // a driver that hears an incoming copy load before step 6 (qemu: its MIGRATION event): the test says when
  let heardLoaded: ((vmId: string, migrationId: string) => void) | undefined;
  Object.assign(driver, { onIncomingLoaded: (fn: typeof heardLoaded) => (heardLoaded = fn) });
  const migrationId = randomUUID();
  const reservation = { migrationId, vmId: vm.id, hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString() };
  const asked: { hostId: string; copy: string }[] = [];
  const bus = {
    request: async (contract: unknown, _req: unknown, opts: { params?: { hostId: string } }) => {
      if (contract === GetReservation) return { reservation };
      if (contract !== QueryStreamEnd) throw new Error('unexpected request');
      asked.push({ hostId: opts.params!.hostId, copy: copy() });
      const n = asked.length;
      await held[n]; // the n-th question's answer waits for the test, if it says so
      const status = source[Math.min(n, source.length) - 1];
      return { migrationId, status, detail: `the source's ${status}`, ...(residentBytes !== undefined ? { residentBytes } : {}) };
    },
    publish: () => undefined,
  };
  const steps = new MigrationStepsService(driver, bus as never, { HOST_ID: 'dst' } as AgentEnv);
  steps.sourceStreamEnd = { waitMs: 200, retryMs: 10 };
  const cmd = (step: number, attempt = 1): StepCommand => ({
    migrationId,
    step,
    stepName: stepName(step),
    attempt,
    role: 'target',
    vm,
    sourceHostId: 'src',
    targetHostId: 'dst',
    policy: MigrationPolicySchema.parse({}),
  });
  const copy = () => driver.listVms().find((v) => v.vmId === vm.id)?.state ?? 'absent';
  const undo6 = () => steps.compensate({ migrationId, step: 6, stepName: 'transfer-state', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id });
  /** The driver hears the copy of `vmId` for `id` loaded, and the word asked then has its answer. */
  const loaded = async (vmId = vm.id, id = migrationId) => {
    heardLoaded!(vmId, id);
    await new Promise((r) => setImmediate(r));
  };
  return { driver, steps, cmd, copy, undo6, migrationId, asked, loaded };
};

/**
 * The target's half of step 6 on a driver that resumes with it (HypervisorDriver.resumesWithTransferState:
 * qemu; the sim with SIM_SWITCHOVER=qemu): the guest runs as soon as its state loaded, the ledger records
 * step 7 with step 6, and from then on nothing of the migration destroys that copy.
 */
describe('the target half of step 6 that starts the guest (step 7 done with it)', () => {

  it('replies with resumedAt, runs the guest, and answers a later step 7 command from the ledger without running it again', async () => {
    const { driver, steps, cmd, copy } = setup(true);
    expect(driver.resumesWithTransferState).toBe(true);
    await steps.run(cmd(2));
    expect(copy()).toBe('incoming');
    const six = await steps.run(cmd(6, 2));
    expect(six.resumedAt).toEqual(expect.any(String));
    expect(copy()).toBe('running');
    const seven = await steps.run(cmd(7));
    expect(seven).toMatchObject({ step: 7, attempt: 1, repeated: true, resumedAt: six.resumedAt });
    const records = await steps.records(cmd(2).migrationId);
    expect(records.map((r) => [r.step, r.role, r.status])).toEqual([
      [2, 'target', 'completed'],
      [6, 'target', 'completed'],
      [7, 'target', 'completed'],
    ]);
  });

  it("hands the driver what the source said of the guest's memory that held data, once the guest runs here (outside the downtime), and nothing when the source said nothing", async () => {
    for (const said of [300 * 2 ** 20, undefined]) {
      const { driver, steps, cmd, copy } = setup(true, ['completed'], said);
      const noted: { vmId: string; residentBytes: number; copy: string }[] = [];
      Object.assign(driver, { noteArrival: (vmId: string, a: { residentBytes: number }) => noted.push({ vmId, ...a, copy: copy() }) });
      await steps.run(cmd(2));
      await steps.run(cmd(6));
      expect(noted).toEqual(said === undefined ? [] : [{ vmId: vm.id, residentBytes: said, copy: 'running' }]);
    }
  });

  it("starts the guest only once the source says its stream completed, asking the source host while the guest is still paused", async () => {
    const { steps, cmd, copy, asked } = setup(true, ['active', 'active', 'completed']);
    await steps.run(cmd(2));
    const six = await steps.run(cmd(6));
    expect(six.resumedAt).toEqual(expect.any(String));
    expect(copy()).toBe('running');
    // asked at once, beside the wait for the state (no round trip of its own in the downtime), then until it says
    expect(asked.map((a) => a.hostId)).toEqual(['src', 'src', 'src']);
    expect(asked.map((a) => a.copy)).not.toContain('running');
  });

  it("starts it when no process runs the VM on the source any more ('gone': no copy can run there)", async () => {
    const { steps, cmd, copy } = setup(true, ['gone']);
    await steps.run(cmd(2));
    await expect(steps.run(cmd(6))).resolves.toMatchObject({ resumedAt: expect.any(String) });
    expect(copy()).toBe('running');
  });

  it('never starts it beside a source whose stream failed (QEMU resumes that guest): CONFLICT, not retried; the paused copy is destroyed by the rollback', async () => {
    const { steps, cmd, copy, migrationId } = setup(true, ['failed']);
    await steps.run(cmd(2));
    await expect(steps.run(cmd(6))).rejects.toMatchObject({ code: ErrorCode.Conflict, retryable: false, message: expect.stringContaining('never started beside the source') });
    expect(copy()).toBe('paused');
    expect((await steps.records(migrationId)).find((r) => r.step === 6)).toMatchObject({ status: 'failed' });
    expect((await steps.records(migrationId)).find((r) => r.step === 7)).toBeUndefined();
    await expect(steps.compensate({ migrationId, step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id })).resolves.toMatchObject({ done: true });
    expect(copy()).toBe('absent');
  });

  it('keeps the copy paused when the source never says (UNAVAILABLE, retryable: the saga asks both agents)', async () => {
    const { steps, cmd, copy, asked } = setup(true, ['active']);
    await steps.run(cmd(2));
    await expect(steps.run(cmd(6))).rejects.toMatchObject({ code: ErrorCode.Unavailable, retryable: true, message: expect.stringContaining('stays paused') });
    expect(copy()).toBe('paused');
    expect(asked.length).toBeGreaterThan(1);
  });

  it("refuses to undo step 6 or step 2 once the guest ran here (CONFLICT, not retryable): the copy keeps running", async () => {
    const { steps, cmd, copy, undo6, migrationId } = setup(true);
    await steps.run(cmd(2));
    await steps.run(cmd(6));
    await expect(undo6()).rejects.toMatchObject({ code: ErrorCode.Conflict, retryable: false, message: expect.stringContaining('must not be resumed') });
    await expect(steps.compensate({ migrationId, step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id })).rejects.toMatchObject({ code: ErrorCode.Conflict });
    expect(copy()).toBe('running');
  });

  it('without it (the sim by default), step 6 leaves the guest paused for step 7, and undoing step 6 destroys the copy', async () => {
    const { driver, steps, cmd, copy, undo6 } = setup(false);
    expect(driver.resumesWithTransferState).toBe(false);
    await steps.run(cmd(2));
    const six = await steps.run(cmd(6));
    expect(six.resumedAt).toBeUndefined();
    expect(copy()).toBe('paused');
    await expect(undo6()).resolves.toMatchObject({ done: true });
    expect(copy()).toBe('absent');
  });
});

/**
 * The source's word asked ahead (source-word-ahead.ts): as soon as the driver hears the incoming copy's state
 * load, before step 6 arrives, so that step 6 finds the word here and starts the guest with no round trip
 * to the source inside the downtime.
 */
describe("the source's word asked as soon as the copy here loaded", () => {
  it('asks the source once the state loaded, before step 6, while the copy is paused; step 6 then starts the guest on that word, asking nothing more', async () => {
    const { steps, cmd, copy, asked, loaded } = setup(true, ['completed']);
    await steps.run(cmd(2));
    expect(asked).toEqual([]);
    await loaded();
    expect(asked).toEqual([{ hostId: 'src', copy: 'incoming' }]);
    const six = await steps.run(cmd(6));
    expect(six.resumedAt).toEqual(expect.any(String));
    expect(copy()).toBe('running');
    expect(asked).toHaveLength(1);
  });

  it("uses no word that does not let go: a source that said failed is asked again at step 6, and the guest is never started beside it", async () => {
    const { steps, cmd, copy, asked, loaded } = setup(true, ['failed']);
    await steps.run(cmd(2));
    await loaded();
    expect(asked).toHaveLength(1);
    await expect(steps.run(cmd(6))).rejects.toMatchObject({ code: ErrorCode.Conflict, retryable: false });
    expect(asked).toHaveLength(2);
    expect(copy()).toBe('paused');
  });

  it('a source still streaming when asked ahead: the question ahead asks again until it lets go, and step 6 starts the guest on that word, asking nothing itself', async () => {
    const { steps, cmd, copy, asked, loaded } = setup(true, ['active', 'completed']);
    await steps.run(cmd(2));
    await loaded();
    expect(asked.map((a) => a.copy)).toEqual(['incoming', 'incoming']);
    await expect(steps.run(cmd(6))).resolves.toMatchObject({ resumedAt: expect.any(String) });
    expect(copy()).toBe('running');
    expect(asked).toHaveLength(2);
  });

  it("a question asked ahead and still unanswered when step 6 arrives: step 6 asks too, and the first word that lets go starts the guest, either one", async () => {
    for (const first of [1, 2]) {
      const answers: Record<number, () => void> = {};
      const held = Object.fromEntries([1, 2].map((n) => [n, new Promise<void>((r) => (answers[n] = r))]));
      const { steps, cmd, copy, asked, loaded } = setup(true, ['completed'], undefined, held);
      await steps.run(cmd(2));
      await loaded();
      expect(asked).toHaveLength(1);
      let done = false;
      const six = steps.run(cmd(6)).finally(() => (done = true));
      await new Promise((r) => setImmediate(r));
      // step 6's own question is asked at once, beside the one under way, and neither has answered
      expect(asked).toHaveLength(2);
      expect(done).toBe(false);
      expect(copy()).not.toBe('running');
      answers[first]!(); // the one asked ahead (1) or step 6's own (2) answers first: the other stays held
      await expect(six).resolves.toMatchObject({ resumedAt: expect.any(String) });
      expect(copy()).toBe('running');
      answers[3 - first]!();
    }
  });

  it('asks for its own migration and copy only, once: a load heard for another asks nothing', async () => {
    const { steps, cmd, asked, loaded, migrationId } = setup(true, ['completed']);
    await steps.run(cmd(2));
    await loaded(randomUUID(), migrationId);
    await loaded(vm.id, randomUUID());
    expect(asked).toEqual([]);
    await loaded();
    await loaded();
    expect(asked).toHaveLength(1);
    await steps.run(cmd(6));
    expect(asked).toHaveLength(1);
  });

  it('a copy the rollback destroyed: a step 6 that comes late is refused and starts nothing, the word asked ahead unused', async () => {
    const { steps, cmd, copy, loaded, migrationId } = setup(true, ['completed']);
    await steps.run(cmd(2));
    await loaded();
    await expect(steps.compensate({ migrationId, step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id })).resolves.toMatchObject({ done: true });
    expect(copy()).toBe('absent');
    // step 2 compensated here: the participation check refuses step 6 before anything runs
    await expect(steps.run(cmd(6))).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
    expect(copy()).toBe('absent');
  });
});

describe('a compensation sent again while it runs (the scheduler got no answer) joins it', () => {
  it('the records say compensating while it runs; the copy is destroyed once; both senders get the answer, and the step reads compensated', async () => {
    const { driver, steps, cmd, copy, migrationId } = setup(false);
    await steps.run(cmd(2));
    // a destroy that takes its time (a QEMU that is slow to quit)
    let finish: () => void = () => undefined;
    const destroy = driver.destroyIncoming.bind(driver);
    let destroys = 0;
    driver.destroyIncoming = async (id: string) => {
      destroys++;
      await new Promise<void>((r) => (finish = r));
      return destroy(id);
    };
    const undo2 = () => steps.compensate({ migrationId, step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id });
    const first = undo2();
    const again = undo2();
    await new Promise((r) => setImmediate(r));
    expect(await steps.records(migrationId)).toEqual([expect.objectContaining({ step: 2, role: 'target', status: 'completed', compensating: true })]);
    finish();
    await expect(Promise.all([first, again])).resolves.toEqual([
      { done: true, note: 'incoming VM destroyed' },
      { done: true, note: 'incoming VM destroyed' },
    ]);
    expect(destroys).toBe(1);
    const [after] = await steps.records(migrationId);
    expect(after).toMatchObject({ step: 2, status: 'compensated' });
    expect(after.compensating).toBeUndefined();
    expect(copy()).toBe('absent');
  });
});

/**
 * The source's step 3 on a driver whose stream reached the switchover inside it (HypervisorDriver.heldAtSwitchover:
 * qemu, an idle guest's): the reply carries the pause, and the ledger records steps 4 and 5 done with step 3.
 */
describe('a step 3 that ends with the guest held at the switchover (steps 4 and 5 done with it)', () => {
  const sourceSetup = (heldAtSwitchover: boolean | undefined) => {
    const driver = new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0, switchoverAsQemu: true });
    if (heldAtSwitchover !== undefined) Object.assign(driver, { heldAtSwitchover: (vmId: string, m: string) => heldAtSwitchover && vmId === vm.id && m === migrationId });
    const migrationId = randomUUID();
    const reservation = { migrationId, vmId: vm.id, hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString() };
    const bus = {
      request: async (contract: unknown) => {
        if (contract === GetReservation) return { reservation, targetMigrationAddress: '127.0.0.1:49152' };
        throw new Error('unexpected request');
      },
      publish: () => undefined,
    };
    const steps = new MigrationStepsService(driver, bus as never, { HOST_ID: 'src' } as AgentEnv);
    const cmd = (step: number): StepCommand => ({ migrationId, step, stepName: stepName(step), attempt: 1, role: 'source', vm, sourceHostId: 'src', targetHostId: 'dst', policy: MigrationPolicySchema.parse({}) });
    const state = () => driver.listVms().find((v) => v.vmId === vm.id)?.state;
    return { driver, steps, cmd, state, migrationId };
  };

  it('replies with pausedAt beside its figures, and answers steps 4 and 5 from the ledger without running them', async () => {
    const { driver, steps, cmd, state, migrationId } = sourceSetup(true);
    await driver.startVm(vm);
    const three = await steps.run(cmd(3));
    expect(three).toMatchObject({ step: 3, repeated: false, stats: expect.objectContaining({ passes: expect.any(Number) }), pausedAt: expect.any(String) });
    expect(state()).toBe('paused');
    const ran: string[] = [];
    for (const name of ['syncMemory', 'pauseSource'] as const) {
      const real = driver[name].bind(driver) as (...a: unknown[]) => unknown;
      Object.assign(driver, { [name]: (...a: unknown[]) => (ran.push(name), real(...a)) });
    }
    await expect(steps.run(cmd(4))).resolves.toMatchObject({ step: 4, attempt: 1, repeated: true, stats: three.stats, pausedAt: three.pausedAt });
    await expect(steps.run(cmd(5))).resolves.toMatchObject({ step: 5, attempt: 1, repeated: true, pausedAt: three.pausedAt });
    expect(ran).toEqual([]);
    expect((await steps.records(migrationId)).map((r) => [r.step, r.role, r.status])).toEqual([
      [3, 'source', 'completed'],
      [4, 'source', 'completed'],
      [5, 'source', 'completed'],
    ]);
  });

  it('a stream not held there, or a driver that cannot tell: step 3 replies without a pause, the guest runs, and step 4 is a command of its own', async () => {
    for (const held of [false, undefined]) {
      const { driver, steps, cmd, state, migrationId } = sourceSetup(held);
      await driver.startVm(vm);
      const three = await steps.run(cmd(3));
      expect(three.pausedAt).toBeUndefined();
      expect(state()).toBe('running');
      expect((await steps.records(migrationId)).map((r) => r.step)).toEqual([3]);
    }
  });
});
