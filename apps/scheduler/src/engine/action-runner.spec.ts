import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { createSaga, type SagaAction, type SagaEvent } from '@flexmig/saga';
import type { SchedulerConfig } from '../config';
import type { DbClock } from '../db-clock';
import type { MigrationEntity } from '../entities';
import { ActionRunner } from './action-runner';
import type { StepExecutor } from './step-executor';

/**
 * The ActionRunner's fast path: what it sends, when, and what a newer action or a shutdown cancels. The
 * executor is a recorder; the sink collects the outcomes as the reconciler would receive them.
 */
const ref = { migrationId: randomUUID(), vmId: randomUUID(), sourceHostId: 'src', targetHostId: 'dst' };
const row = { id: ref.migrationId, saga: createSaga(ref, Date.now()), vm: {}, policy: {}, targetAddress: '127.0.0.1:1', traceParent: null } as unknown as MigrationEntity;

const runStep = (step: 5 | 7, attempt = 1, notBefore: number | null = null): SagaAction => ({
  kind: 'run-step',
  migrationId: ref.migrationId,
  step,
  name: step === 5 ? 'pause-source' : 'resume-target',
  actor: step === 5 ? 'source' : 'target',
  attempt,
  idempotencyKey: `${ref.migrationId}:${step}:${attempt}`,
  deadline: Date.now() + 30_000,
  notBefore,
});

const turn = () => new Promise<void>((r) => setImmediate(r));

function setUp(clock = { now: () => Date.now() } as DbClock) {
  const sent: { step: number; attempt: number; atClock: number }[] = [];
  const outcomes: SagaEvent[] = [];
  const executor = {
    run: async (_ctx: unknown, a: { step: number; attempt: number }) => {
      sent.push({ step: a.step, attempt: a.attempt, atClock: clock.now() });
      return { ok: true };
    },
  } as unknown as StepExecutor;
  const runner = new ActionRunner(executor, clock, { reconcileIntervalMs: 1_000 } as SchedulerConfig);
  runner.onOutcome(async (_id, e) => {
    outcomes.push(e);
  });
  return { runner, sent, outcomes };
}

const until = async (what: () => boolean) => {
  while (!what()) await turn();
};

describe('ActionRunner', () => {
  beforeAll(() => Logger.overrideLogger(['error']));
  afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']));

  it('sends an action that is due now right after the transition that called for it, and hands its outcome to the sink', async () => {
    const { runner, sent, outcomes } = setUp();
    runner.run(row, [runStep(5)]);
    expect(sent).toEqual([]); // not inside the caller's transition: in a microtask after it
    expect(runner.isInProgress(ref.migrationId)).toBe(true);
    await Promise.resolve();
    // sent before anything the caller queued after its transition (the transition's events), and before any timer
    expect(sent).toEqual([{ step: 5, attempt: 1, atClock: expect.any(Number) }]);
    await until(() => outcomes.length > 0);
    expect(outcomes).toEqual([{ type: 'step-succeeded', step: 5, attempt: 1, result: { ok: true } }]);
    await until(() => !runner.isInProgress(ref.migrationId));
  });

  it('a newer action of the same migration replaces one that has not started', async () => {
    const { runner, sent, outcomes } = setUp();
    runner.run(row, [runStep(5, 1)]);
    runner.run(row, [runStep(5, 2)]);
    await until(() => outcomes.length > 0);
    expect(sent).toEqual([{ step: 5, attempt: 2, atClock: expect.any(Number) }]);
  });

  it('a finished migration forgets the action it had waiting', async () => {
    const { runner, sent } = setUp();
    runner.run(row, [runStep(5)]);
    runner.run(row, [{ kind: 'finish', migrationId: ref.migrationId, outcome: 'cancelled' } as SagaAction]);
    await turn();
    await turn();
    expect(sent).toEqual([]);
    expect(runner.inProgress()).toEqual([]);
  });

  it('waits for the action notBefore before it sends it', async () => {
    const { runner, sent } = setUp();
    const notBefore = Date.now() + 40;
    runner.run(row, [runStep(7, 1, notBefore)]);
    await turn();
    expect(sent).toEqual([]);
    await until(() => sent.length > 0);
    expect(Date.now()).toBeGreaterThanOrEqual(notBefore);
  });

  it("given a saga clock that runs behind the process's timers, when an action waits for notBefore, then it is sent only once that clock reaches it", async () => {
    // the database's clock, read through DbClock, running at half the speed of the timers: a timer set for
    // the wait as that clock measured it fires early by that clock, as a real one may by a millisecond
    const startedAt = Date.now();
    const clock = { now: () => startedAt + (Date.now() - startedAt) / 2 } as DbClock;
    const { runner, sent } = setUp(clock);
    const notBefore = clock.now() + 20;
    runner.run(row, [runStep(7, 1, notBefore)]);
    await until(() => sent.length > 0);
    expect(sent[0]!.atClock).toBeGreaterThanOrEqual(notBefore);
  });

  it('sends nothing after shutdown', async () => {
    const { runner, sent } = setUp();
    runner.run(row, [runStep(5)]);
    runner.run({ ...row, id: randomUUID() } as MigrationEntity, [runStep(7, 1, Date.now() + 20)]);
    runner.onApplicationShutdown();
    await new Promise((r) => setTimeout(r, 40));
    expect(sent).toEqual([]);
    expect(runner.inProgress()).toEqual([]);
  });
});
