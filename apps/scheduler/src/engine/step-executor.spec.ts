import { randomUUID } from 'node:crypto';
import { MigrationPolicySchema, QueryMigration, RelocateVm, ReserveCapacity, RunStep, type RequestContract } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { STEPS, type SagaAction, type StepDefinition } from '@flexmig/saga';
import type { LeaseFence } from './lease-fence';
import { StepExecutor, type MigrationContext } from './step-executor';

/**
 * Issue 11: one NATS round trip per step. A bus that answers every request on the next turn of the event
 * loop and numbers the "rounds": requests sent before any answer came back share a round; a request sent
 * after an answer starts a new one. A step that asked, read the answer and asked again would take two.
 */
class RoundCountingBus {
  readonly sent: { subject: string; payload: any; round: number; hostId?: string }[] = [];
  private round = 0;
  private answeredSinceLastSend = true;

  constructor(private readonly replies: (subject: string, payload: any) => unknown) {}

  request(contract: RequestContract, payload: any, opts: { params?: { hostId?: string } } = {}): Promise<unknown> {
    if (this.answeredSinceLastSend) this.round++;
    this.answeredSinceLastSend = false;
    this.sent.push({ subject: contract.subject, payload, round: this.round, hostId: opts.params?.hostId });
    return new Promise((resolve) =>
      setImmediate(() => {
        this.answeredSinceLastSend = true;
        resolve(this.replies(contract.subject, payload));
      }),
    );
  }

  rounds(): number {
    return new Set(this.sent.map((s) => s.round)).size;
  }
}

const ref = { migrationId: randomUUID(), vmId: randomUUID(), sourceHostId: 'src', targetHostId: 'dst' };
const ctx: MigrationContext = {
  ref,
  vm: { id: ref.vmId, name: 'vm', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' } as MigrationContext['vm'],
  policy: MigrationPolicySchema.parse({}),
  targetAddress: '127.0.0.1:1',
};
const reservation = { migrationId: ref.migrationId, vmId: ref.vmId, hostId: 'dst', memoryMiB: 512, vcpus: 1, createdAt: new Date(0).toISOString() };
const verdict = { compatible: true, baseline: 'IvyBridge', missing: [], vendorMismatch: false, unchecked: [], reason: 'the target has every feature of IvyBridge' };

const replies = (subject: string, payload: any): unknown => {
  switch (subject) {
    case ReserveCapacity.subject:
      return { reservation, verdict };
    case RelocateVm.subject:
      return { vm: { id: ref.vmId, hostId: 'dst' } };
    case RunStep.subject:
      return { migrationId: payload.migrationId, step: payload.step, role: payload.role, ok: true };
    case QueryMigration.subject:
      return { steps: [{ step: payload.step, role: 'source', status: 'completed', reply: {} }, { step: payload.step, role: 'target', status: 'completed', reply: {} }] };
    default:
      throw new Error(`the executor sent an unexpected request on ${subject}`);
  }
};

const fence = { check: () => undefined } as unknown as LeaseFence;
const runAction = (d: StepDefinition): Extract<SagaAction, { kind: 'run-step' }> => ({
  kind: 'run-step',
  migrationId: ref.migrationId,
  step: d.number,
  name: d.name,
  actor: d.actor,
  attempt: 1,
  idempotencyKey: `${ref.migrationId}:${d.number}:1`,
  deadline: Date.now() + 60_000,
  notBefore: null,
});

describe('StepExecutor: one NATS round trip per step', () => {
  it.each(STEPS.map((d) => [d.number, d.name, d] as const))('step %i (%s) is one round trip', async (_n, _name, d) => {
    const bus = new RoundCountingBus(replies);
    await new StepExecutor(bus as unknown as NatsBus, fence).run(ctx, runAction(d), 5_000);
    expect(bus.sent.length).toBeGreaterThanOrEqual(1);
    expect(bus.rounds()).toBe(1);
  });

  it('step 1 is a single request to inventory, which checks the CPU and reserves; its result keeps the verdict and the reservation', async () => {
    const bus = new RoundCountingBus(replies);
    const result = await new StepExecutor(bus as unknown as NatsBus, fence).run(ctx, runAction(STEPS[0]), 5_000);
    expect(bus.sent.map((s) => s.subject)).toEqual([ReserveCapacity.subject]);
    expect(bus.sent[0].payload).toEqual({ migrationId: ref.migrationId, vmId: ref.vmId, hostId: 'dst' });
    expect(result).toEqual({ baseline: 'IvyBridge', verdict: verdict.reason, reservation });
  });

  it('step 6 asks both agents at once, and a lost reply of it is asked of both at once too', async () => {
    const bus = new RoundCountingBus(replies);
    const executor = new StepExecutor(bus as unknown as NatsBus, fence);
    await executor.run(ctx, runAction(STEPS[5]), 5_000);
    expect(bus.sent.map((s) => [s.hostId, s.payload.role])).toEqual([
      ['src', 'source'],
      ['dst', 'target'],
    ]);
    const asked = new RoundCountingBus(replies);
    const outcome = await new StepExecutor(asked as unknown as NatsBus, fence).query(ctx, { kind: 'query-step', migrationId: ref.migrationId, step: 6, name: STEPS[5].name, actor: 'source+target', attempt: 1, notBefore: null });
    expect(outcome.outcome).toBe('completed');
    expect(asked.sent.map((s) => s.hostId)).toEqual(['src', 'dst']);
    expect(asked.rounds()).toBe(1);
  });
});
