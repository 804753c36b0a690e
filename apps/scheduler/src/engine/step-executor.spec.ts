import { randomUUID } from 'node:crypto';
import { CompensateStep, ErrorCode, FlexmigError, MigrationPolicySchema, QueryMigration, RelocateVm, ReserveCapacity, RunStep, type RequestContract } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { STEPS, type SagaAction, type StepDefinition } from '@flexmig/saga';
import type { LeaseFence } from './lease-fence';
import { StepExecutor, lostAttempt, lostCompensation, step6Outcome, type MigrationContext } from './step-executor';

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

describe("step 6 when the target's half starts the guest (step 7 done with it)", () => {
  const step6 = { name: STEPS[5].name, attempt: 2 };
  const resumed = { migrationId: ref.migrationId, step: 6, attempt: 2, repeated: false, finishedAt: '2026-12-03T12:00:00.010Z', resumedAt: '2026-12-03T12:00:00.008Z' };
  const plain = { migrationId: ref.migrationId, step: 6, attempt: 2, repeated: false, finishedAt: '2026-12-03T12:00:00.010Z' };
  const ok = <T>(value: T) => ({ status: 'fulfilled' as const, value: value as never });
  const no = (e: unknown) => ({ status: 'rejected' as const, reason: e });
  const agentSays = new FlexmigError(ErrorCode.AgentFailed, 'the final copy failed', undefined, true);
  const nobody = new FlexmigError(ErrorCode.Unavailable, 'nobody answers agent.dst.migration.step', { subject: 'agent.dst.migration.step', delivered: false });
  const lost = new FlexmigError(ErrorCode.Unavailable, 'request on agent.dst.migration.step failed: disconnected');
  const silence = new FlexmigError(ErrorCode.Timeout, 'no reply within 30000 ms');

  it('succeeds once the target resumed, whatever the source half said: the VM runs on the target, only forward', () => {
    expect(step6Outcome(step6, ok({ stats: { downtimeMs: 3 } }), ok(resumed))).toEqual({ stats: { downtimeMs: 3 }, target: resumed });
    expect(step6Outcome(step6, no(agentSays), ok(resumed))).toEqual({ sourceError: { code: ErrorCode.AgentFailed, message: 'the final copy failed', retryable: true }, target: resumed });
    expect(step6Outcome(step6, no(silence), ok(resumed))).toMatchObject({ sourceError: { code: ErrorCode.Timeout }, target: resumed });
  });

  it('a target half nobody answered may have started the guest: reported as a timeout (asked), never as a failure, even after a source failure', () => {
    for (const source of [ok({}), no(agentSays), no(nobody)]) {
      for (const unknown of [lost, silence]) {
        let thrown: unknown;
        try {
          step6Outcome(step6, source, no(unknown));
        } catch (e) {
          thrown = e;
        }
        expect(thrown).toBeInstanceOf(FlexmigError);
        expect((thrown as FlexmigError).code).toBe(ErrorCode.Timeout);
        expect((thrown as FlexmigError).message).toContain('may have started the guest');
      }
    }
  });

  it('a target that answered with an error, or that NATS says no one listens for, fails the step (the source error first); no resume means the halves as before', () => {
    const targetSays = new FlexmigError(ErrorCode.Conflict, 'no incoming VM');
    expect(() => step6Outcome(step6, ok({}), no(nobody))).toThrow(nobody);
    expect(() => step6Outcome(step6, no(agentSays), no(targetSays))).toThrow(agentSays);
    expect(() => step6Outcome(step6, ok({}), no(targetSays))).toThrow(targetSays);
    expect(() => step6Outcome(step6, no(agentSays), ok(plain))).toThrow(agentSays);
    expect(step6Outcome(step6, ok({ stats: {} }), ok(plain))).toEqual({ stats: {}, target: plain });
  });

  const queryStep6 = { kind: 'query-step' as const, migrationId: ref.migrationId, step: 6 as const, name: STEPS[5].name, actor: 'source+target' as const, attempt: 1, notBefore: null };
  const withRecords = (source: unknown, target: unknown) =>
    new RoundCountingBus((subject, payload) => (subject === QueryMigration.subject ? { steps: [source, target].filter(Boolean) } : replies(subject, payload)));

  it('a lost reply: a target record of step 6 that resumed the guest makes it completed, and one still running is waited for, even beside a failed or unfinished source half', async () => {
    for (const source of [
      { step: 6, role: 'source', status: 'failed', error: { code: 'AGENT_FAILED', message: 'the agent stopped while step 6 ran' } },
      { step: 6, role: 'source', status: 'in-progress' },
      undefined,
    ]) {
      const bus = withRecords(source, { step: 6, role: 'target', status: 'completed', reply: resumed });
      const outcome = await new StepExecutor(bus as unknown as NatsBus, fence).query(ctx, queryStep6);
      expect(outcome).toEqual({ outcome: 'completed', result: { target: resumed } });
    }
    const stillRunning = withRecords({ step: 6, role: 'source', status: 'failed', error: { code: 'AGENT_FAILED', message: 'x' } }, { step: 6, role: 'target', status: 'in-progress' });
    expect((await new StepExecutor(stillRunning as unknown as NatsBus, fence).query(ctx, queryStep6)).outcome).toBe('in-progress');
    const failedSource = withRecords({ step: 6, role: 'source', status: 'failed', error: { code: 'AGENT_FAILED', message: 'x' } }, { step: 6, role: 'target', status: 'completed', reply: plain });
    expect((await new StepExecutor(failedSource as unknown as NatsBus, fence).query(ctx, queryStep6)).outcome).toBe('failed');
  });

  it("undoing step 6 destroys the target's copy before it resumes the source, and stops there when the target refuses", async () => {
    const order: string[] = [];
    const bus = {
      request: async (_c: RequestContract, payload: any, opts: { params?: { hostId?: string } }) => {
        order.push(`${opts.params?.hostId}:${payload.compensation}`);
        if (payload.role === 'target' && refuse) throw new FlexmigError(ErrorCode.Conflict, 'VM already runs on this host', undefined, false);
        return { done: true };
      },
    };
    let refuse = false;
    const compensate = { kind: 'compensate' as const, migrationId: ref.migrationId, step: 6 as const, name: STEPS[5].name, actor: 'source+target' as const, compensation: STEPS[5].compensation!, attempt: 1, deadline: Date.now() + 5_000, notBefore: null };
    await new StepExecutor(bus as unknown as NatsBus, fence).compensate(ctx, compensate, 5_000);
    expect(order).toEqual(['dst:destroy-incoming-vm', 'src:resume-source']);
    order.length = 0;
    refuse = true;
    await expect(new StepExecutor(bus as unknown as NatsBus, fence).compensate(ctx, compensate, 5_000)).rejects.toThrow('already runs');
    expect(order).toEqual(['dst:destroy-incoming-vm']);
  });
});

describe('an agent silent inside a step: asked whether it still runs the attempt (an agent restarted inside the step lost it)', () => {
  const probe = { probeAfterMs: 20, probeEveryMs: 10 };
  const run = (d: StepDefinition, attempt = 1) => ({ ...runAction(d), attempt });

  /** A bus where step commands answer only when told to, and the agents' records are whatever `records` says now. */
  const silentBus = (records: (hostId: string) => unknown[] | Error) => {
    const queries: { hostId?: string; payload: any }[] = [];
    const answerSteps = new Map<string, () => void>();
    const bus = {
      request: (contract: RequestContract, payload: any, opts: { params?: { hostId?: string } } = {}): Promise<unknown> => {
        if (contract.subject === RunStep.subject) {
          return new Promise((resolve) =>
            answerSteps.set(opts.params?.hostId ?? '', () => resolve({ migrationId: payload.migrationId, step: payload.step, attempt: payload.attempt, repeated: false, finishedAt: new Date().toISOString() })),
          );
        }
        if (contract.subject === QueryMigration.subject) {
          queries.push({ hostId: opts.params?.hostId, payload });
          const r = records(opts.params?.hostId ?? '');
          return r instanceof Error ? Promise.reject(r) : Promise.resolve({ migrationId: payload.migrationId, steps: r });
        }
        return Promise.reject(new Error(`unexpected request on ${contract.subject}`));
      },
    };
    return { bus: bus as unknown as NatsBus, queries, answer: (hostId: string) => answerSteps.get(hostId)?.() };
  };

  it('lostAttempt: no record (fenced now) or this attempt ended there is lost; running, or another attempt, is not', () => {
    const rec = (attempt: number, status: string) => ({ step: 3, role: 'source' as const, attempt, status: status as never });
    expect(lostAttempt([], 3, 'source', 1)).toBe('never-ran');
    expect(lostAttempt([{ ...rec(1, 'completed'), role: 'target' }], 3, 'source', 1)).toBe('never-ran');
    expect(lostAttempt([rec(2, 'failed')], 3, 'source', 2)).toBe('ended');
    expect(lostAttempt([rec(2, 'completed')], 3, 'source', 2)).toBe('ended');
    expect(lostAttempt([rec(2, 'in-progress')], 3, 'source', 2)).toBeUndefined();
    expect(lostAttempt([rec(1, 'failed')], 3, 'source', 2)).toBeUndefined(); // attempt 2 may be on its way
  });

  it('a step whose agent restarted and has no record of it fails at once as a TIMEOUT (the saga asks), not after the step timeout', async () => {
    const { bus, queries } = silentBus(() => []);
    const t = Date.now();
    const e = await new StepExecutor(bus, fence, probe).run(ctx, run(STEPS[2]), 60_000).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.Timeout, retryable: true, message: expect.stringContaining('never ran there') });
    expect(Date.now() - t).toBeLessThan(5_000);
    // the saga's own question, with the attempt: the agent fences it, so the lost command can no longer run
    expect(queries[0]).toMatchObject({ hostId: 'src', payload: { migrationId: ref.migrationId, step: 3, attempt: 1 } });
  });

  it('a step the agent runs is waited for however long it takes, and one the agent cannot be asked about is asked again', async () => {
    let answers = 0;
    const { bus, queries, answer } = silentBus(() => (++answers <= 2 ? new FlexmigError(ErrorCode.Unavailable, 'nobody answers', { delivered: false }) : [{ step: 4, role: 'source', attempt: 1, status: 'in-progress' }]));
    const running = new StepExecutor(bus, fence, probe).run(ctx, run(STEPS[3]), 60_000);
    while (queries.length < 5) await new Promise((r) => setTimeout(r, 5));
    answer('src');
    await expect(running).resolves.toMatchObject({ step: 4 });
    const asked = queries.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(queries.length).toBe(asked); // nothing asked once the reply came
  });

  it("step 6: a target half lost by a restarted agent is reported as unanswered (asked, never failed), while the source's half completed", async () => {
    const { bus, answer } = silentBus((hostId) => (hostId === 'dst' ? [{ step: 6, role: 'target', attempt: 1, status: 'failed', error: { code: 'AGENT_FAILED', message: 'the agent stopped while step 6 (target) ran' } }] : [{ step: 6, role: 'source', attempt: 1, status: 'in-progress' }]));
    const running = new StepExecutor(bus, fence, probe).run(ctx, run(STEPS[5]), 60_000).catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 40));
    answer('src'); // the source's half replies; the target's never will
    expect(await running).toMatchObject({ code: ErrorCode.Timeout, message: expect.stringMatching(/no answer from the target .* it may have started the guest/) });
  });
});

describe('an agent silent during a compensation: asked, and sent it again when it no longer runs it (an agent restarted inside it lost it)', () => {
  const probe = { probeAfterMs: 20, probeEveryMs: 10 };
  const undo = (d: StepDefinition) => ({ kind: 'compensate' as const, migrationId: ref.migrationId, step: d.number, name: d.name, actor: d.actor, compensation: d.compensation!, attempt: 1, deadline: Date.now() + 60_000, notBefore: null });
  type Undo = ReturnType<typeof undo>;

  /**
   * An agent whose records are whatever `records` says now, and whose answer to the n-th compensation
   * command (from 1) is `answer(n, payload)`: a reply, a promise of one (never settled: lost), or a throw.
   */
  const agentBus = (records: () => unknown[], answer: (n: number, payload: any) => unknown) => {
    const sent: { subject: string; hostId?: string; payload: any }[] = [];
    const compensations = () => sent.filter((s) => s.subject === CompensateStep.subject);
    const bus = {
      request: async (contract: RequestContract, payload: any, opts: { params?: { hostId?: string } } = {}): Promise<unknown> => {
        sent.push({ subject: contract.subject, hostId: opts.params?.hostId, payload });
        if (contract.subject === QueryMigration.subject) return { migrationId: payload.migrationId, steps: records() };
        if (contract.subject !== CompensateStep.subject) throw new Error(`unexpected request on ${contract.subject}`);
        return answer(compensations().length, payload);
      },
    };
    return { bus: bus as unknown as NatsBus, sent, compensations, queries: () => sent.length - compensations().length };
  };
  const lost = new Promise<never>(() => undefined);
  const done = (payload: any) => ({ migrationId: payload.migrationId, step: payload.step, done: true });
  /** The first compensation command is lost in the agent that died; each later one is answered by `resend`. */
  const lostFirstBus = (records: () => unknown[], resend: (payload: any) => unknown = done) => agentBus(records, (n, payload) => (n === 1 ? lost : resend(payload)));
  const compensate = (bus: NatsBus, a: Undo) => new StepExecutor(bus, fence, probe).compensate(ctx, a, 60_000);

  it('lostCompensation: compensated is done; running it is waited for; anything else (its record as it was, or none) is lost', () => {
    const rec = (status: string, compensating?: true) => ({ step: 4, role: 'source' as const, attempt: 1, status: status as never, ...(compensating ? { compensating } : {}) });
    expect(lostCompensation([rec('compensated')], 4, 'source')).toBe('done');
    expect(lostCompensation([rec('completed', true)], 4, 'source')).toBeUndefined();
    expect(lostCompensation([rec('completed')], 4, 'source')).toBe('lost');
    expect(lostCompensation([{ ...rec('compensated'), role: 'target' }], 4, 'source')).toBe('lost');
    expect(lostCompensation([], 4, 'source')).toBe('lost');
  });

  it('a compensation lost by a restarted agent is sent again at once, and its reply ends it, not the 60 s timeout', async () => {
    const { bus, sent, compensations } = lostFirstBus(() => [{ step: 5, role: 'source', attempt: 1, status: 'completed' }]);
    const t = Date.now();
    await compensate(bus, undo(STEPS[4]));
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(compensations()).toHaveLength(2);
    expect(compensations()[1]).toMatchObject({ hostId: 'src', payload: { step: 5, compensation: 'resume-source', role: 'source' } });
    // the question names no attempt: it fences nothing
    expect(sent.find((s) => s.subject === QueryMigration.subject)?.payload).toEqual({ migrationId: ref.migrationId, step: 5 });
  });

  it('one resend out at a time: while it is unanswered the agent is asked on, and nothing more is sent; one that found no agent is sent again', async () => {
    let answer: () => void = () => undefined;
    // the first is lost, the second finds no responder (the agent restarting), the third waits for the test
    const { bus, compensations, queries } = agentBus(
      () => [{ step: 5, role: 'source', attempt: 1, status: 'completed' }],
      (n, payload) => {
        if (n === 1) return lost;
        if (n === 2) throw new FlexmigError(ErrorCode.Unavailable, 'no responders', { delivered: false });
        return new Promise((resolve) => (answer = () => resolve(done(payload))));
      },
    );
    const running = compensate(bus, undo(STEPS[4]));
    try {
      while (queries() < 8) await new Promise((r) => setTimeout(r, 5));
      expect(compensations()).toHaveLength(3);
    } finally {
      answer(); // also when the check failed: the executor stops asking
    }
    await expect(running).resolves.toBeUndefined();
  });

  it('a step the agent recorded compensated is done, though its reply was lost: nothing is sent again', async () => {
    const { bus, compensations } = lostFirstBus(() => [{ step: 5, role: 'source', attempt: 1, status: 'compensated' }]);
    await compensate(bus, undo(STEPS[4]));
    expect(compensations()).toHaveLength(1);
  });

  it('a compensation the agent still runs is waited for, never sent twice', async () => {
    let answer: () => void = () => undefined;
    const { bus, compensations, queries } = agentBus(
      () => [{ step: 5, role: 'source', attempt: 1, status: 'completed', compensating: true }],
      (_n, payload) => new Promise((resolve) => (answer = () => resolve(done(payload)))),
    );
    const running = compensate(bus, undo(STEPS[4]));
    try {
      while (queries() < 4) await new Promise((r) => setTimeout(r, 5));
      expect(compensations()).toHaveLength(1);
    } finally {
      answer(); // also when the check failed: the executor stops asking
    }
    await expect(running).resolves.toBeUndefined();
  });

  it('the agent refusing the compensation sent again fails it with that refusal', async () => {
    const refusal = new FlexmigError(ErrorCode.Conflict, 'this agent has no record of pause-source (source)', undefined, false);
    const { bus } = lostFirstBus(
      () => [],
      () => {
        throw refusal;
      },
    );
    await expect(compensate(bus, undo(STEPS[4]))).rejects.toBe(refusal);
  });

  it('step 6: the target, silent after a restart, is sent its compensation again before the source is resumed', async () => {
    const { bus, compensations } = lostFirstBus(() => [{ step: 6, role: 'target', attempt: 1, status: 'completed' }]);
    await compensate(bus, undo(STEPS[5]));
    expect(compensations().map((c) => `${c.hostId}:${c.payload.compensation}`)).toEqual(['dst:destroy-incoming-vm', 'dst:destroy-incoming-vm', 'src:resume-source']);
  });
});
