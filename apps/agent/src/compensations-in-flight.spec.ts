import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { GetReservation, MigrationPolicySchema, type StepRecord } from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { CompensationsInFlight } from './compensations-in-flight';
import { AgentEnv } from './config';
import { SimDriver } from './drivers/sim.driver';
import { MigrationStepsService } from './migration-steps.service';

describe('CompensationsInFlight: a compensation sent again while it runs joins it', () => {
  const migrationId = randomUUID();
  const of = (step: number, role: 'source' | 'target' = 'source') => ({ migrationId, step, role });
  const record = (step: number, role: 'source' | 'target' = 'source'): StepRecord => ({ step: step as StepRecord['step'], role, attempt: 1, status: 'completed' });

  it('a second call while the first runs gets the same outcome, and the undo runs once', async () => {
    const inFlight = new CompensationsInFlight<string>();
    let runs = 0;
    let finish: (v: string) => void = () => undefined;
    const undo = () => {
      runs++;
      return new Promise<string>((resolve) => (finish = resolve));
    };
    const first = inFlight.run(of(5), undo);
    const second = inFlight.run(of(5), undo);
    finish('VM resumed on the source');
    await expect(Promise.all([first, second])).resolves.toEqual(['VM resumed on the source', 'VM resumed on the source']);
    expect(runs).toBe(1);
  });

  it('once it ended, ok or not, the next call runs the undo again (compensations are idempotent)', async () => {
    const inFlight = new CompensationsInFlight<string>();
    await expect(inFlight.run(of(5), () => Promise.reject(new Error('QMP cont failed')))).rejects.toThrow('QMP cont failed');
    await expect(inFlight.run(of(5), async () => 'VM resumed on the source')).resolves.toBe('VM resumed on the source');
  });

  it("another step's or role's compensation is not joined", async () => {
    const inFlight = new CompensationsInFlight<string>();
    const never = inFlight.run(of(6, 'target'), () => new Promise<string>(() => undefined));
    await expect(inFlight.run(of(6, 'source'), async () => 'source')).resolves.toBe('source');
    await expect(inFlight.run(of(5, 'source'), async () => 'five')).resolves.toBe('five');
    void never;
  });

  it('mark: the step whose compensation runs now says so in the records, and only while it runs', async () => {
    const inFlight = new CompensationsInFlight<string>();
    let finish: (v: string) => void = () => undefined;
    const running = inFlight.run(of(6, 'target'), () => new Promise<string>((resolve) => (finish = resolve)));
    const records = [record(5), record(6, 'source'), record(6, 'target')];
    expect(inFlight.mark(migrationId, records)).toEqual([record(5), record(6, 'source'), { ...record(6, 'target'), compensating: true }]);
    expect(inFlight.mark(randomUUID(), records)).toEqual(records);
    finish('target copy destroyed');
    await running;
    expect(inFlight.mark(migrationId, records)).toEqual(records);
  });
});

describe('the agent: a compensation sent again while it runs (the scheduler got no answer) joins it', () => {
  it('the records say compensating while it runs; the copy is destroyed once; both senders get the answer, and the step reads compensated', async () => {
    const vm = { id: randomUUID(), name: 'vm-c', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
    const migrationId = randomUUID();
    const driver = new SimDriver({ hostCpu: simulatedHostCpu('IvyBridge'), memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, defaultDirtyRateMiBps: 0, defaultWorkingSetMiB: 0 });
    const reservation = { migrationId, vmId: vm.id, hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString() };
    const bus = {
      request: async (contract: unknown) => {
        if (contract !== GetReservation) throw new Error('unexpected request');
        return { reservation };
      },
      publish: () => undefined,
    };
    const steps = new MigrationStepsService(driver, bus as never, { HOST_ID: 'dst' } as AgentEnv);
    await steps.run({ migrationId, step: 2, stepName: 'transfer-config', attempt: 1, role: 'target', vm, sourceHostId: 'src', targetHostId: 'dst', policy: MigrationPolicySchema.parse({}) });
    // a destroy that takes its time (a QEMU that is slow to quit)
    let finish: () => void = () => undefined;
    const destroy = driver.destroyIncoming.bind(driver);
    let destroys = 0;
    driver.destroyIncoming = async (id: string) => {
      destroys++;
      await new Promise<void>((r) => (finish = r));
      return destroy(id);
    };
    const undo = () => steps.compensate({ migrationId, step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id });
    const first = undo();
    const again = undo();
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
    expect(driver.listVms().find((v) => v.vmId === vm.id)).toBeUndefined();
  });
});
