import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import {
  STEPS,
  canCancel,
  createSaga,
  currentStep,
  decide,
  evolve,
  inFlightActions,
  isTerminal,
  resolvePolicy,
  step,
  summarize,
  type SagaAction,
  type StepNumber,
} from '../index';
import { ALL_STEPS, PRE_PONR, REF, Saga, T0, kinds, ofKind } from './test-kit';

const reversed = (n: number): StepNumber[] => Array.from({ length: n }, (_, i) => (n - i) as StepNumber);
/**
 * The order a failure of step `failed` undoes the steps before it: reverse order, except that once step 6 was
 * sent the target's copy (step 2) goes first, before anything resumes the source (nextToCompensate).
 */
const undoOrder = (failed: number): StepNumber[] => (failed === 6 ? [2, 5, 4, 3, 1] : reversed(failed - 1));

describe('STEPS', () => {
  it('lists the nine steps in order with actor, compensation and timeout', () => {
    expect(STEPS.map((d) => [d.number, d.name, d.actor, d.compensation])).toEqual([
      [1, 'verify-compatibility', 'scheduler', 'release-reservation'],
      [2, 'transfer-config', 'target', 'destroy-incoming-vm'],
      [3, 'transfer-memory', 'source', 'cancel-stream'],
      [4, 'sync-memory', 'source', 'cancel-stream'],
      [5, 'pause-source', 'source', 'resume-source'],
      [6, 'transfer-state', 'source+target', 'resume-source + destroy-incoming-vm'],
      [7, 'resume-target', 'target', null],
      [8, 'stop-source', 'source', null],
      [9, 'commit', 'scheduler', null],
    ]);
    for (const d of STEPS) expect(d.defaultTimeoutMs).toBeGreaterThan(0);
  });
});

describe('createSaga / policy', () => {
  it('starts in `created` with nine pending steps and the default policy', () => {
    const s = createSaga(REF, T0);
    expect(s.phase).toBe('created');
    expect(s.steps.map((x) => x.status)).toEqual(Array(9).fill('pending'));
    expect(s.policy.maxAttempts).toBe(3);
    expect(isTerminal(s)).toBe(false);
    expect(currentStep(s)).toBeNull();
  });
  it('merges a partial policy and rejects a bad one with VALIDATION_FAILED', () => {
    const p = resolvePolicy({ maxAttempts: 5, stepTimeoutMs: { commit: 1234 }, backoff: { maxMs: 10 } });
    expect(p.maxAttempts).toBe(5);
    expect(p.stepTimeoutMs.commit).toBe(1234);
    expect(p.stepTimeoutMs['pause-source']).toBe(10_000);
    expect(p.backoff).toEqual({ initialMs: 1000, multiplier: 2, maxMs: 10 });
    expect(() => resolvePolicy({ maxAttempts: 0 })).toThrow(FlexmigError);
    try {
      resolvePolicy({ stepTimeoutMs: { commit: -1 } });
    } catch (e) {
      expect((e as FlexmigError).code).toBe(ErrorCode.ValidationFailed);
      expect((e as FlexmigError).message).toContain('stepTimeoutMs.commit');
    }
  });
  it('requires the migration reference', () => {
    expect(() => createSaga({ ...REF, vmId: '' }, T0)).toThrow(/vmId/);
  });
});

describe('happy path', () => {
  it('given a created saga, when every step succeeds, then nine run-steps in order, nine step-completed, then completed', () => {
    const s = new Saga();
    const first = s.when({ type: 'start' });
    expect(kinds(first)).toEqual(['run-step:1']);
    const run1 = ofKind(first, 'run-step')[0];
    expect(run1).toEqual({
      kind: 'run-step',
      migrationId: REF.migrationId,
      step: 1,
      name: 'verify-compatibility',
      actor: 'scheduler',
      attempt: 1,
      idempotencyKey: `${REF.migrationId}:1:1`,
      deadline: s.now + 30_000,
      notBefore: null,
    });
    for (const n of ALL_STEPS) {
      const out = s.succeed(n);
      expect(kinds(out)).toEqual(n < 9 ? ['publish:migration.step-completed', `run-step:${n + 1}`] : ['publish:migration.step-completed', 'publish:migration.completed', 'finish:completed']);
      const pub = ofKind(out, 'publish')[0];
      expect(pub.data).toMatchObject({ step: n, stepName: STEPS[n - 1].name, durationMs: 1_000, attempt: 1 });
      expect(pub.id).toBe(`${REF.migrationId}:step-completed:${n}`);
    }
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).toEqual(ALL_STEPS);
    const done = ofKind(s.log, 'publish').find((a) => a.type === 'migration.completed')!;
    expect(done.data).toEqual({ migrationId: REF.migrationId, vmId: REF.vmId, sourceHostId: 'host-a', targetHostId: 'host-b', totalTimeMs: 9_000 });
    expect(s.state.phase).toBe('completed');
    expect(s.state.steps.every((x) => x.status === 'completed')).toBe(true);
    expect(ofKind(s.log, 'compensate')).toHaveLength(0);
    expect(isTerminal(s.state)).toBe(true);
  });

  it('given a clock that steps back between events (a step handed to a replica whose estimate runs behind), then no duration is negative', () => {
    const s = new Saga();
    s.when({ type: 'start' }, T0);
    const out = [...s.succeed(1), ...s.when({ type: 'step-succeeded', step: 2, attempt: 1 }, s.now - 50)];
    for (const n of [3, 4, 5, 6, 7, 8, 9] as StepNumber[]) out.push(...s.succeed(n));
    const durations = ofKind(out, 'publish').filter((a) => a.type === 'migration.step-completed').map((a) => a.data.durationMs);
    expect(durations).toHaveLength(9);
    expect(durations[1]).toBe(0); // step 2 "ended" 50 ms before it started
    expect(durations.every((d) => typeof d === 'number' && d >= 0)).toBe(true);
    expect(summarize(s.state).steps.every((st) => st.durationMs !== null && st.durationMs >= 0)).toBe(true);
  });

  it('keeps the step result', () => {
    const s = Saga.runningAt(4);
    s.succeed(4, { passes: 3, remainingBytes: 1024 });
    expect(s.state.steps[3].result).toEqual({ passes: 3, remainingBytes: 1024 });
  });
});

describe('step 3 that ends with the guest paused (steps 4 and 5 done with it)', () => {
  const PAUSED = '2025-01-01T12:00:03.500Z';
  const stats = { passes: 1, bytesTransferred: 1024, remainingBytes: 4096 };

  it("completes steps 4 and 5 in the same transition and sends step 6 next: no command of either, their events still published, step 4 keeping step 3's figures", () => {
    const s = Saga.runningAt(3);
    const out = s.succeed(3, { stats, pausedAt: PAUSED });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:6']);
    expect(ofKind(out, 'publish').map((p) => p.data.step)).toEqual([3, 4, 5]);
    expect(s.state.steps[3]).toMatchObject({ status: 'completed', attempt: 1, dispatches: 0, inFlight: null, result: { stats, pausedAt: PAUSED, doneWith: 3 } });
    expect(s.state.steps[4]).toMatchObject({ status: 'completed', attempt: 1, dispatches: 0, inFlight: null, result: { pausedAt: PAUSED, doneWith: 3 } });
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).toEqual([1, 2, 3, 6]);
    for (const n of [6, 7, 8, 9] as StepNumber[]) s.succeed(n);
    expect(s.state.phase).toBe('completed');
    expect(s.state.steps.every((x) => x.status === 'completed')).toBe(true);
  });

  it('without pausedAt (or with one that is not a time string), step 4 is a command of its own', () => {
    for (const result of [undefined, null, { stats }, { stats, pausedAt: '' }, { pausedAt: 12 }, ['pausedAt']]) {
      const s = Saga.runningAt(3);
      expect(kinds(s.succeed(3, result as never))).toEqual(['publish:migration.step-completed', 'run-step:4']);
      expect(s.state.steps[3].status).toBe('running');
      expect(s.state.steps[4].status).toBe('pending');
    }
  });

  it('a step 3 answered by a query (its reply lost) carries the same result: steps 4 and 5 are done with it as well', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    const out = s.when({ type: 'step-outcome-resolved', step: 3, attempt: 1, outcome: 'completed', result: { stats, pausedAt: PAUSED } });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:6']);
  });

  it("when step 6 then fails for good, the target's copy (step 2) is undone first, then 5 (the source resumed), 4, 3 and 1", () => {
    const s = Saga.runningAt(3);
    s.succeed(3, { stats, pausedAt: PAUSED });
    const out = s.fail(6);
    const { order } = s.compensateAll(out);
    expect(order).toEqual([2, 5, 4, 3, 1]);
    expect(s.state.phase).toBe('rolled-back');
  });

  it('when a cancel waited for step 3, steps 5, 4 and 3 are all undone, 5 first (the source resumed), and no step 6 is sent', () => {
    const s = Saga.runningAt(3);
    s.cancel();
    const out = s.succeed(3, { stats, pausedAt: PAUSED });
    expect(kinds(out).at(-1)).toBe('compensate:5');
    const { order } = s.compensateAll(out);
    expect(order).toEqual([5, 4, 3, 2, 1]);
    expect(s.state.phase).toBe('cancelled');
    expect(ofKind(s.log, 'run-step').some((r) => r.step >= 4)).toBe(false);
  });
});

describe('step 4 that ends with the guest paused (step 5 done with it)', () => {
  const PAUSED = '2025-01-01T12:00:04.500Z';

  it('completes step 5 in the same transition and sends step 6 next: no command of step 5, its event still published', () => {
    const s = Saga.runningAt(4);
    const out = s.succeed(4, { stats: { passes: 2 }, pausedAt: PAUSED });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:6']);
    expect(ofKind(out, 'publish').map((p) => p.data.step)).toEqual([4, 5]);
    expect(ofKind(out, 'publish')[1].data).toMatchObject({ step: 5, stepName: 'pause-source', attempt: 1, durationMs: 0 });
    const five = s.state.steps[4];
    expect(five).toMatchObject({ status: 'completed', attempt: 1, dispatches: 0, inFlight: null, deadline: null, result: { pausedAt: PAUSED, doneWith: 4 } });
    expect(five.completedAt).toBe(s.now);
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).toEqual([1, 2, 3, 4, 6]);
    for (const n of [6, 7, 8, 9] as StepNumber[]) s.succeed(n);
    expect(s.state.phase).toBe('completed');
    expect(s.state.steps.every((x) => x.status === 'completed')).toBe(true);
  });

  it('without pausedAt (or with one that is not a time string), step 5 is a command of its own', () => {
    for (const result of [undefined, null, { stats: { passes: 2 } }, { pausedAt: '' }, { pausedAt: 12 }, ['pausedAt']]) {
      const s = Saga.runningAt(4);
      expect(kinds(s.succeed(4, result as never))).toEqual(['publish:migration.step-completed', 'run-step:5']);
      expect(s.state.steps[4].status).toBe('running');
    }
  });

  it("only steps 3 and 4 do it: a pausedAt in another step's result completes nothing else", () => {
    for (const n of [1, 2, 6, 8] as StepNumber[]) {
      const s = Saga.runningAt(n);
      const out = s.succeed(n, { pausedAt: PAUSED });
      expect(ofKind(out, 'publish').map((p) => p.data.step)).toEqual([n]);
      expect(s.state.steps[4].status).toBe(n < 5 ? 'pending' : 'completed');
    }
  });

  it("when step 6 then fails for good, the target's copy (step 2) is undone first, then 5 (the source resumed), 4, 3 and 1", () => {
    const s = Saga.runningAt(4);
    s.succeed(4, { pausedAt: PAUSED });
    const { order, compensations, out } = s.compensateAll(s.fail(6));
    expect(order).toEqual([2, 5, 4, 3, 1]);
    expect(compensations).toEqual(order.map((n) => STEPS[n - 1].compensation));
    expect(s.state.phase).toBe('rolled-back');
    expect(ofKind(out, 'publish').find((p) => p.type === 'migration.rolled-back')!.data).toMatchObject({ step: 6, compensatedSteps: [1, 2, 3, 4, 5] });
  });

  it('when a cancel waited for step 4, steps 5 and 4 are both undone: 5 first (the source resumed), no step 6', () => {
    const s = Saga.runningAt(4);
    s.cancel();
    const out = s.succeed(4, { pausedAt: PAUSED });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'compensate:5']);
    const { order } = s.compensateAll(out);
    expect(order).toEqual([5, 4, 3, 2, 1]);
    expect(s.state.phase).toBe('cancelled');
    expect(ofKind(s.log, 'run-step').some((r) => r.step >= 5)).toBe(false);
  });

  it('a step 4 answered by a query (its reply lost) carries the same result: step 5 is done with it as well', () => {
    const s = Saga.runningAt(4);
    s.timeout(4);
    const out = s.when({ type: 'step-outcome-resolved', step: 4, attempt: 1, outcome: 'completed', result: { pausedAt: PAUSED } });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:6']);
    expect(s.state.steps[4]).toMatchObject({ status: 'completed', result: { pausedAt: PAUSED, doneWith: 4 } });
  });

  it('after a restart, what is in flight is step 6, not step 5', () => {
    const s = Saga.runningAt(4);
    s.succeed(4, { pausedAt: PAUSED });
    expect(kinds(s.when({ type: 'resume-after-restart' }))).toEqual(['run-step:6']);
  });
});

describe("step 6 whose target half ends with the guest running (step 7 done with it)", () => {
  const RESUMED = '2025-01-01T12:00:06.020Z';
  const resumedResult = { stats: { downtimeMs: 12 }, target: { resumedAt: RESUMED } };

  it('completes step 7 in the same transition and sends step 8 next: no command of step 7, its event still published', () => {
    const s = Saga.runningAt(6);
    const out = s.succeed(6, resumedResult);
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:8']);
    expect(ofKind(out, 'publish')[1].data).toMatchObject({ step: 7, stepName: 'resume-target', attempt: 1, durationMs: 0 });
    expect(s.state.steps[6]).toMatchObject({ status: 'completed', attempt: 1, dispatches: 0, inFlight: null, deadline: null, result: { resumedAt: RESUMED, doneWith: 6 } });
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).not.toContain(7);
    for (const n of [8, 9] as StepNumber[]) s.succeed(n);
    expect(s.state.phase).toBe('completed');
    expect(s.state.steps.every((x) => x.status === 'completed')).toBe(true);
  });

  it('with steps 5 and 7 both done inside steps 4 and 6, the switchover costs two transitions', () => {
    const s = Saga.runningAt(4);
    expect(kinds(s.succeed(4, { pausedAt: '2025-01-01T12:00:05.000Z' })).at(-1)).toBe('run-step:6');
    expect(kinds(s.succeed(6, resumedResult)).at(-1)).toBe('run-step:8');
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).toEqual([1, 2, 3, 4, 6, 8]);
  });

  it('without the target half saying it resumed, step 7 is a command of its own', () => {
    for (const result of [undefined, null, { stats: {} }, { resumedAt: RESUMED }, { target: {} }, { target: { resumedAt: '' } }, { target: null }, { target: [RESUMED] }]) {
      const s = Saga.runningAt(6);
      expect(kinds(s.succeed(6, result as never))).toEqual(['publish:migration.step-completed', 'run-step:7']);
      expect(s.state.steps[6].status).toBe('running');
    }
  });

  it("only step 6 does it: a target's resumedAt in another step's result completes nothing else", () => {
    const s = Saga.runningAt(5);
    expect(kinds(s.succeed(5, { target: { resumedAt: RESUMED } }))).toEqual(['publish:migration.step-completed', 'run-step:6']);
    expect(s.state.steps[6].status).toBe('pending');
  });

  it('a cancel that waited for step 6 is past the point of no return once the target resumed: forward, nothing undone', () => {
    const s = Saga.runningAt(6);
    s.cancel();
    const out = s.succeed(6, resumedResult);
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:8']);
    s.succeed(8);
    s.succeed(9);
    expect(s.state.phase).toBe('completed');
    expect(ofKind(s.log, 'compensate')).toEqual([]);
    expect(s.state.cause).toBeNull();
    expect(s.state.cancel).toMatchObject({ by: 'alice' });
  });

  it('a step 6 answered by a query (its reply lost) carries the same result: step 7 is done with it as well', () => {
    const s = Saga.runningAt(6);
    s.timeout(6);
    const out = s.when({ type: 'step-outcome-resolved', step: 6, attempt: 1, outcome: 'completed', result: resumedResult });
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'publish:migration.step-completed', 'run-step:8']);
    expect(s.state.steps[6]).toMatchObject({ status: 'completed', result: { resumedAt: RESUMED, doneWith: 6 } });
  });

  it('after a restart, what is in flight is step 8, not step 7', () => {
    const s = Saga.runningAt(6);
    s.succeed(6, resumedResult);
    expect(kinds(s.when({ type: 'resume-after-restart' }))).toEqual(['run-step:8']);
  });
});

describe('failure before the point of no return', () => {
  it.each(PRE_PONR)('given steps before %i completed, when step %i fails for good, then the completed steps are compensated in reverse and it rolls back', (n) => {
    const s = Saga.runningAt(n);
    const out = s.fail(n, false, 'AGENT_FAILED', `disk on fire at ${n}`);
    const compensations: number[] = [];
    let last = out;
    while (ofKind(last, 'compensate').length === 1) {
      const c = ofKind(last, 'compensate')[0];
      compensations.push(c.step);
      expect(c.attempt).toBe(1);
      expect(c.compensation).toBe(STEPS[c.step - 1].compensation);
      last = s.compensated(c.step);
    }
    expect(compensations).toEqual(undoOrder(n));
    expect(kinds(last)).toEqual(['publish:migration.failed', 'publish:migration.rolled-back', 'finish:rolled-back']);
    const [failed, rolledBack] = ofKind(last, 'publish');
    expect(failed.data).toMatchObject({ step: n, stepName: STEPS[n - 1].name, code: 'AGENT_FAILED', reason: `disk on fire at ${n}`, needsAttention: false });
    expect(rolledBack.data).toMatchObject({ step: n, hostId: 'host-a', compensatedSteps: reversed(n - 1).reverse() });
    expect(s.state.phase).toBe('rolled-back');
    expect(s.state.steps.map((x) => x.status)).toEqual([
      ...Array(n - 1).fill('compensated'),
      'failed',
      ...Array(9 - n).fill('skipped'),
    ]);
    expect(s.state.cause).toMatchObject({ kind: 'step-failed', step: n, reason: `disk on fire at ${n}`, attempts: 1 });
    // never a run-step after the failure
    expect(ofKind(s.log, 'run-step').map((a) => a.step)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });

  it('compensates one step at a time: the next compensation waits for the previous one', () => {
    const s = Saga.runningAt(4);
    expect(kinds(s.fail(4))).toEqual(['compensate:3']);
    expect(s.state.phase).toBe('compensating');
    expect(kinds(s.compensated(3))).toEqual(['compensate:2']);
    expect(currentStep(s.state)?.step).toBe(2);
  });
});

describe('retries', () => {
  it('given a retryable failure, then the step is retried with a new attempt and backoff, up to maxAttempts', () => {
    const s = Saga.runningAt(3);
    const a2 = ofKind(s.fail(3, true), 'run-step');
    expect(a2).toHaveLength(1);
    expect(a2[0]).toMatchObject({ step: 3, attempt: 2, notBefore: s.now + 1_000, idempotencyKey: `${REF.migrationId}:3:2` });
    expect(a2[0].deadline).toBe(s.now + 1_000 + 30 * 60_000);
    const a3 = ofKind(s.fail(3, true), 'run-step');
    expect(a3[0]).toMatchObject({ attempt: 3, notBefore: s.now + 2_000 });
    const out = s.fail(3, true, 'AGENT_FAILED', 'the copy broke');
    expect(kinds(out)).toEqual(['compensate:2']);
    expect(s.state.cause).toMatchObject({ step: 3, attempts: 3, error: { code: 'AGENT_FAILED', retryable: true } });
  });

  it('given the other agent does not answer (UNAVAILABLE), then the step is retried past maxAttempts while within peerUnavailableRetryMs of its first attempt, then rolled back', () => {
    const s = Saga.runningAt(3, { peerUnavailableRetryMs: 20_000 });
    const startedAt = s.state.steps[2].startedAt!;
    const attempts: number[] = [];
    // each failure comes 1 s after the previous event (the test kit's tick): attempts 2, 3, 4 … until 20 s
    for (let out = s.fail(3, true, 'UNAVAILABLE', 'target does not answer'); ofKind(out, 'run-step').length; out = s.fail(3, true, 'UNAVAILABLE', 'target does not answer')) {
      attempts.push(ofKind(out, 'run-step')[0].attempt);
    }
    expect(attempts.length).toBeGreaterThan(2); // beyond maxAttempts (3)
    expect(attempts).toEqual(Array.from({ length: attempts.length }, (_, i) => i + 2));
    expect(s.now - startedAt).toBeGreaterThanOrEqual(20_000);
    expect(s.state.phase).toBe('compensating');
    expect(s.state.cause).toMatchObject({ step: 3, error: { code: 'UNAVAILABLE' } });
  });

  it('given a peer that comes back within peerUnavailableRetryMs, then the step completes on a later attempt', () => {
    const s = Saga.runningAt(3);
    for (let i = 0; i < 4; i++) s.fail(3, true, 'UNAVAILABLE', 'target does not answer');
    expect(s.attempt(3)).toBe(5);
    expect(kinds(s.succeed(3))).toEqual(['publish:migration.step-completed', 'run-step:4']);
  });

  it('a state persisted before peerUnavailableRetryMs existed gets its default', () => {
    const s = Saga.runningAt(3);
    delete (s.state.policy as { peerUnavailableRetryMs?: number }).peerUnavailableRetryMs;
    for (let i = 0; i < 3; i++) s.fail(3, true, 'UNAVAILABLE', 'target does not answer');
    expect(s.attempt(3)).toBe(4);
  });

  it('a retried step that then succeeds continues, and its duration counts from the first attempt', () => {
    const s = Saga.runningAt(2);
    const startedAt = s.state.steps[1].startedAt!;
    s.fail(2, true);
    const out = s.succeed(2);
    expect(kinds(out)).toEqual(['publish:migration.step-completed', 'run-step:3']);
    expect(ofKind(out, 'publish')[0].data).toMatchObject({ attempt: 2, durationMs: s.now - startedAt });
  });

  it('honours a configured maxAttempts', () => {
    const s = Saga.runningAt(2, { maxAttempts: 5 });
    for (let i = 2; i <= 5; i++) expect(ofKind(s.fail(2, true), 'run-step')[0].attempt).toBe(i);
    expect(kinds(s.fail(2, true))).toEqual(['compensate:1']);
  });

  it('a non-retryable failure is not retried', () => {
    const s = Saga.runningAt(5);
    expect(kinds(s.fail(5, false))).toEqual(['compensate:4']);
  });

  it.each([8, 9] as StepNumber[])('step %i: a transient failure is retried with capped backoff, up to maxFinishAttempts, never compensated', (n) => {
    const s = Saga.runningAt(n, { backoff: { maxMs: 8_000 }, maxFinishAttempts: 8 });
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      const [r] = ofKind(s.fail(n, true), 'run-step');
      expect(r.attempt).toBe(i + 2);
      delays.push(r.notBefore! - s.now);
    }
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(s.state.phase).toBe('running');
    const out = s.succeed(n);
    expect(kinds(out)[0]).toBe('publish:migration.step-completed');
    expect(ofKind(s.log, 'compensate')).toHaveLength(0);
  });

  it.each([8, 9] as StepNumber[])('step %i: a permanent error ends failed-needs-attention at once (the VM runs on the target)', (n) => {
    const s = Saga.runningAt(n);
    const out = s.fail(n, false, 'VM_NOT_FOUND', 'the source has no such VM');
    expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(s.state.attention).toMatchObject({ kind: 'finish-failed', step: n, error: { code: 'VM_NOT_FOUND' } });
    expect(ofKind(s.log, 'compensate')).toHaveLength(0);
  });

  it.each([8, 9] as StepNumber[])('step %i: the last allowed attempt failing escalates too, and frees the migration', (n) => {
    const s = Saga.runningAt(n, { maxFinishAttempts: 3 });
    expect(kinds(s.fail(n, true))).toEqual([`run-step:${n}`]);
    expect(kinds(s.fail(n, true))).toEqual([`run-step:${n}`]);
    expect(kinds(s.fail(n, true))).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(isTerminal(s.state)).toBe(true);
    expect(s.state.attention).toMatchObject({ kind: 'finish-failed', step: n });
  });
});

describe('an agent that cannot be asked (outcome unknown)', () => {
  const unreachable = { code: 'UNAVAILABLE', message: 'nobody answers agent.host-b.migration.query', retryable: true };

  it.each(ALL_STEPS)('step %i: asked again with backoff while within outcomeUnknownLimitMs, then failed-needs-attention', (n) => {
    const s = Saga.runningAt(n, { outcomeUnknownLimitMs: 60_000, backoff: { maxMs: 8_000 } });
    s.timeout(n);
    const since = s.now + s.tick;
    for (let i = 0; i < 5; i++) {
      const out = s.when({ type: 'step-query-failed', step: n, attempt: 1, error: unreachable });
      expect(kinds(out)).toEqual([`query-step:${n}`]);
      expect(ofKind(out, 'query-step')[0].notBefore).toBeGreaterThan(s.now);
    }
    expect(s.state.phase).toBe('running');
    const out = s.when({ type: 'step-query-failed', step: n, attempt: 1, error: unreachable }, since + 60_000);
    expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(s.state.attention).toMatchObject({ kind: 'outcome-unknown', step: n, since, error: { code: 'UNAVAILABLE' } });
    expect(ofKind(s.log, 'compensate')).toHaveLength(0);
  });

  it('an answer in between (even "in progress") starts the clock again', () => {
    const s = Saga.runningAt(4, { outcomeUnknownLimitMs: 60_000 });
    s.timeout(4);
    s.when({ type: 'step-query-failed', step: 4, attempt: 1, error: unreachable });
    s.when({ type: 'step-outcome-resolved', step: 4, attempt: 1, outcome: 'in-progress' }, s.now + 50_000);
    const out = s.when({ type: 'step-query-failed', step: 4, attempt: 1, error: unreachable }, s.now + 30_000);
    expect(kinds(out)).toEqual(['query-step:4']);
    expect(s.state.phase).toBe('running');
  });

  it('a failed query for another attempt, or while no query is out, changes nothing', () => {
    const s = Saga.runningAt(3);
    expect(s.when({ type: 'step-query-failed', step: 3, attempt: 1, error: unreachable })).toEqual([]);
    s.timeout(3);
    expect(s.when({ type: 'step-query-failed', step: 3, attempt: 2, error: unreachable })).toEqual([]);
  });
});

describe('step 7 (point of no return)', () => {
  it('a retryable failure is retried up to maxResumeTargetAttempts, then escalated without any compensation', () => {
    const s = Saga.runningAt(7);
    for (let i = 2; i <= 5; i++) expect(kinds(s.fail(7, true))).toEqual(['run-step:7']);
    const out = s.fail(7, true, 'AGENT_FAILED', 'qmp cont refused');
    expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(ofKind(out, 'publish')[0].data).toMatchObject({ step: 7, stepName: 'resume-target', needsAttention: true, reason: 'qmp cont refused' });
    expect(s.state.attention).toMatchObject({ kind: 'resume-target-failed', step: 7 });
    expect(ofKind(s.log, 'compensate')).toHaveLength(0);
    expect(s.state.steps.slice(0, 6).every((x) => x.status === 'completed')).toBe(true);
  });
  it('a non-retryable failure is escalated at once, the source is not resumed', () => {
    const s = Saga.runningAt(7);
    expect(kinds(s.fail(7, false))).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(s.state.steps[6].status).toBe('failed');
    expect(s.state.steps[7].status).toBe('pending');
  });
  it('a timeout is resolved by asking, never by guessing', () => {
    const s = Saga.runningAt(7);
    expect(kinds(s.timeout(7))).toEqual(['query-step:7']);
    expect(kinds(s.resolve(7, 'completed'))).toEqual(['publish:migration.step-completed', 'run-step:8']);
  });
});

describe('timeouts → query', () => {
  it.each(ALL_STEPS)('step %i: a timeout queries the agent about the same attempt', (n) => {
    const s = Saga.runningAt(n);
    const out = s.timeout(n);
    expect(out).toEqual([{ kind: 'query-step', migrationId: REF.migrationId, step: n, name: STEPS[n - 1].name, actor: STEPS[n - 1].actor, attempt: 1, notBefore: null }]);
    expect(s.state.steps[n - 1]).toMatchObject({ status: 'running', inFlight: 'query', queries: 1, lastError: { code: 'TIMEOUT' } });
  });
  it('an unanswered query is asked again with backoff', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    const [q2] = ofKind(s.timeout(3), 'query-step');
    expect(q2.notBefore).toBe(s.now + 1_000);
    const [q3] = ofKind(s.timeout(3), 'query-step');
    expect(q3.notBefore).toBe(s.now + 2_000);
    expect(s.attempt(3)).toBe(1);
  });
  it('resolved completed → next step', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    expect(kinds(s.resolve(3, 'completed'))).toEqual(['publish:migration.step-completed', 'run-step:4']);
  });
  it('resolved failed → retried as a (retryable) failure', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    const [r] = ofKind(s.resolve(3, 'failed'), 'run-step');
    expect(r).toMatchObject({ step: 3, attempt: 2 });
    expect(s.state.steps[2].lastError?.code).toBe('AGENT_FAILED');
  });
  it('resolved failed with a non-retryable error → rollback', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    const out = s.when({ type: 'step-outcome-resolved', step: 3, attempt: 1, outcome: 'failed', error: { code: 'CPU_INCOMPATIBLE', message: 'no avx512', retryable: false } });
    expect(kinds(out)).toEqual(['compensate:2']);
    expect(s.state.cause).toMatchObject({ step: 3, reason: 'no avx512' });
  });
  it('resolved not-started → a new attempt (the old one is fenced by the agent)', () => {
    const s = Saga.runningAt(5);
    s.timeout(5);
    const [r] = ofKind(s.resolve(5, 'not-started'), 'run-step');
    expect(r).toMatchObject({ step: 5, attempt: 2 });
  });
  it('resolved not-started too often before step 7 → rollback', () => {
    const s = Saga.runningAt(2);
    for (let i = 0; i < 2; i++) {
      s.timeout(2);
      s.resolve(2, 'not-started');
    }
    s.timeout(2);
    expect(kinds(s.resolve(2, 'not-started'))).toEqual(['compensate:1']);
  });
  it('resolved in-progress → ask again after the poll interval', () => {
    const s = Saga.runningAt(4);
    s.timeout(4);
    const [q] = ofKind(s.resolve(4, 'in-progress'), 'query-step');
    expect(q).toMatchObject({ step: 4, attempt: 1, notBefore: s.now + 5_000 });
    expect(kinds(s.resolve(4, 'completed'))).toEqual(['publish:migration.step-completed', 'run-step:5']);
  });
  it('a late reply to the command is accepted while querying', () => {
    const s = Saga.runningAt(6);
    s.timeout(6);
    expect(kinds(s.succeed(6))).toEqual(['publish:migration.step-completed', 'run-step:7']);
  });
});

describe('stale and duplicate events are ignored (same state object, no actions)', () => {
  const cases: [string, (s: Saga) => void, (s: Saga) => Parameters<Saga['when']>[0]][] = [
    ['success for an older attempt', (s) => s.fail(3, true), () => ({ type: 'step-succeeded', step: 3, attempt: 1 })],
    ['failure for a future attempt', () => undefined, () => ({ type: 'step-failed', step: 3, attempt: 2, error: { code: 'X', message: '', retryable: false } })],
    ['success for a pending step', () => undefined, () => ({ type: 'step-succeeded', step: 4, attempt: 1 })],
    ['success for a completed step (duplicate reply)', () => undefined, () => ({ type: 'step-succeeded', step: 2, attempt: 1 })],
    ['timeout for a completed step', () => undefined, () => ({ type: 'step-timed-out', step: 1, attempt: 1 })],
    ['outcome for an older attempt', (s) => s.fail(3, true), () => ({ type: 'step-outcome-resolved', step: 3, attempt: 1, outcome: 'completed' })],
    ['in-progress while the command is still awaited', () => undefined, () => ({ type: 'step-outcome-resolved', step: 3, attempt: 1, outcome: 'in-progress' })],
    ['compensation result while running forward', () => undefined, () => ({ type: 'compensation-succeeded', step: 2 })],
    ['a second start', () => undefined, () => ({ type: 'start' })],
    ['an unknown step number', () => undefined, () => ({ type: 'step-succeeded', step: 42 as StepNumber, attempt: 1 })],
    ['resume with nothing expired changes nothing', () => undefined, () => ({ type: 'resume-after-restart' })],
  ];
  it.each(cases)('%s', (_name, given, event) => {
    const s = Saga.runningAt(3);
    given(s);
    const before = s.state;
    const snapshot = JSON.stringify(before);
    const next = evolve(before, event(s), s.now + 1);
    expect(next).toBe(before);
    expect(JSON.stringify(before)).toBe(snapshot); // input never mutated
    if (event(s).type !== 'resume-after-restart') expect(decide(before, event(s), s.now + 1)).toEqual([]);
  });

  it('compensation events for the wrong step or attempt are ignored', () => {
    const s = Saga.runningAt(4);
    s.fail(4);
    const before = s.state;
    expect(step(before, { type: 'compensation-succeeded', step: 2 }, s.now)).toEqual({ state: before, actions: [] });
    expect(step(before, { type: 'compensation-succeeded', step: 3, attempt: 2 }, s.now).state).toBe(before);
    expect(step(before, { type: 'compensation-timed-out', step: 3, attempt: 7 }, s.now).state).toBe(before);
    s.compensated(3);
    expect(step(s.state, { type: 'compensation-succeeded', step: 3 }, s.now).actions).toEqual([]);
  });

  it.each(['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'])('a %s saga ignores every event', (outcome) => {
    const s = outcome === 'completed' ? Saga.runningAt(9) : Saga.runningAt(outcome === 'failed-needs-attention' ? 7 : 1);
    if (outcome === 'completed') s.succeed(9);
    if (outcome === 'rolled-back') s.fail(1);
    if (outcome === 'cancelled') {
      s.cancel();
      s.succeed(1);
      s.compensated(1);
    }
    if (outcome === 'failed-needs-attention') s.fail(7);
    expect(s.state.phase).toBe(outcome);
    const events: Parameters<Saga['when']>[0][] = [
      { type: 'start' },
      { type: 'resume-after-restart' },
      { type: 'cancel-requested', reason: 'x', by: 'y' },
      { type: 'step-succeeded', step: 1, attempt: 1 },
      { type: 'step-timed-out', step: 7, attempt: 1 },
      { type: 'compensation-succeeded', step: 1 },
    ];
    for (const e of events) expect(step(s.state, e, s.now + 5)).toEqual({ state: s.state, actions: [] });
    expect(inFlightActions(s.state)).toEqual([]);
  });
});

describe('cancel', () => {
  it('before start: cancelled at once, nothing to compensate', () => {
    const s = new Saga();
    expect(kinds(s.cancel())).toEqual(['publish:migration.cancelled', 'finish:cancelled']);
    expect(s.state.steps.every((x) => x.status === 'skipped')).toBe(true);
  });

  it.each(PRE_PONR)('while step %i runs: the step is awaited, then it and the earlier steps are compensated in reverse', (n) => {
    const s = Saga.runningAt(n);
    expect(canCancel(s.state)).toEqual({ ok: true });
    expect(s.cancel('bob', 'maintenance window over')).toEqual([]);
    expect(s.state.cause).toMatchObject({ kind: 'cancelled', by: 'bob', duringStep: n });
    expect(canCancel(s.state).ok).toBe(false);
    const out = s.succeed(n);
    expect(kinds(out)).toEqual(['publish:migration.step-completed', `compensate:${n}`]);
    const { order, out: last } = s.compensateAll(out);
    expect(order).toEqual(reversed(n));
    expect(kinds(last)).toEqual(['publish:migration.cancelled', 'finish:cancelled']);
    expect(ofKind(last, 'publish')[0].data).toMatchObject({ reason: 'maintenance window over', by: 'bob', compensatedSteps: reversed(n).reverse() });
    expect(ofKind(s.log, 'run-step').some((r) => r.step === n + 1)).toBe(false);
  });

  it.each(PRE_PONR)('while step %i runs and then fails: the earlier steps are compensated, outcome cancelled, no retry', (n) => {
    const s = Saga.runningAt(n);
    s.cancel();
    const out = s.fail(n, true);
    const { order } = s.compensateAll(out);
    expect(order).toEqual(undoOrder(n));
    expect(s.state.phase).toBe('cancelled');
    expect(s.state.steps[n - 1].status).toBe('failed');
    expect(ofKind(s.log, 'run-step').filter((r) => r.step === n)).toHaveLength(1);
  });

  it('while a step is queried and turns out never started: that step is skipped, not compensated', () => {
    const s = Saga.runningAt(3);
    s.timeout(3);
    s.cancel();
    expect(kinds(s.resolve(3, 'not-started'))).toEqual(['compensate:2']);
    expect(s.state.steps[2].status).toBe('skipped');
  });

  it('after step 6 completes and step 7 is issued, it is refused', () => {
    const s = Saga.runningAt(7);
    expect(canCancel(s.state)).toEqual({ ok: false, reason: expect.stringContaining('point of no return') });
    const before = s.state;
    expect(s.cancel()).toEqual([]);
    expect(s.state).toBe(before);
  });

  it.each([7, 8, 9] as StepNumber[])('at step %i it is refused', (n) => {
    const s = Saga.runningAt(n);
    expect(canCancel(s.state).ok).toBe(false);
    s.cancel();
    expect(s.state.cancel).toBeNull();
  });

  it('a second cancel and a cancel while rolling back are refused', () => {
    const s = Saga.runningAt(3);
    s.cancel('first');
    const st = s.state;
    s.cancel('second');
    expect(s.state).toBe(st);
    expect(s.state.cancel?.by).toBe('first');
    const r = Saga.runningAt(3);
    r.fail(3);
    expect(canCancel(r.state)).toEqual({ ok: false, reason: 'the migration is already being rolled back' });
  });

  it('a cancel that arrives while step 6 runs prevents step 7 from ever being sent', () => {
    const s = Saga.runningAt(6);
    s.cancel();
    s.timeout(6);
    s.resolve(6, 'completed');
    expect(ofKind(s.log, 'run-step').some((r) => r.step === 7)).toBe(false);
    expect(s.state.phase).toBe('compensating');
  });
});

describe('compensation failures', () => {
  it('a retryable compensation failure the agent answers is retried up to maxCompensationAttempts, then escalated; the first cause is kept', () => {
    const s = Saga.runningAt(5);
    s.fail(5, false, 'AGENT_FAILED', 'qmp stop failed');
    // the timeout in between does not extend the attempts: the agent answered again after it
    const err = { code: 'AGENT_FAILED', message: 'QMP migrate_cancel failed', retryable: true };
    const [c2] = ofKind(s.when({ type: 'compensation-failed', step: 4, attempt: 1, error: err }), 'compensate');
    expect(c2).toMatchObject({ step: 4, attempt: 2, notBefore: s.now + 1_000 });
    const [c3] = ofKind(s.when({ type: 'compensation-timed-out', step: 4, attempt: 2 }), 'compensate');
    expect(c3).toMatchObject({ step: 4, attempt: 3 });
    const out = s.when({ type: 'compensation-failed', step: 4, error: err });
    expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(s.state.cause).toMatchObject({ kind: 'step-failed', step: 5, reason: 'qmp stop failed' });
    expect(s.state.attention).toMatchObject({ kind: 'compensation-failed', step: 4, uncompensatedSteps: [1, 2, 3] });
    expect(s.state.steps.map((x) => x.status).slice(0, 5)).toEqual(['completed', 'completed', 'completed', 'compensation-failed', 'failed']);
    const data = ofKind(out, 'publish')[0].data;
    expect(data).toMatchObject({ step: 5, code: 'AGENT_FAILED', needsAttention: true });
    expect(String(data.reason)).toContain('qmp stop failed');
    expect(String(data.reason)).toContain('compensation of step 4 failed');
  });

  describe('while its agent cannot be reached', () => {
    const nobody = { code: 'UNAVAILABLE', message: 'nobody answers agent.host-b.migration.compensate', retryable: true };
    const policy = { outcomeUnknownLimitMs: 60_000, backoff: { maxMs: 8_000 } };
    /** Step 6 failed for good (the target agent killed and still restarting): the rollback starts with step 2, on the target. */
    const rollingBackTo2 = () => {
      const s = Saga.runningAt(6, policy);
      s.fail(6, false, 'CONFLICT', 'target gone');
      expect(s.state.steps[1].status).toBe('compensating');
      return s;
    };
    const unanswered = (s: Saga, at?: number) => s.when({ type: 'compensation-failed', step: 2, attempt: s.state.steps[1].compensation!.attempt, error: nobody }, at);

    it('is retried with backoff past maxCompensationAttempts, and the rollback ends once the agent is back', () => {
      const s = rollingBackTo2();
      for (let i = 0; i < 5; i++) {
        const [c] = ofKind(unanswered(s), 'compensate');
        expect(c).toMatchObject({ step: 2, attempt: i + 2 });
        expect(c.notBefore).toBeGreaterThan(s.now);
      }
      s.when({ type: 'compensation-timed-out', step: 2, attempt: 6 });
      expect(s.state.phase).toBe('compensating');
      s.compensated(2);
      for (const n of [5, 4, 3] as StepNumber[]) s.compensated(n);
      const out = s.compensated(1);
      expect(kinds(out)).toEqual(['publish:migration.failed', 'publish:migration.rolled-back', 'finish:rolled-back']);
      expect(s.state.attention).toBeNull();
    });

    it('is escalated once the agent has been unreachable for outcomeUnknownLimitMs, naming the step and why', () => {
      const s = rollingBackTo2();
      unanswered(s);
      const since = s.now;
      for (let i = 0; i < 4; i++) unanswered(s);
      expect(s.state.phase).toBe('compensating');
      const out = unanswered(s, since + 60_000);
      expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
      // the source was never resumed: the target's copy is unknown, so steps 5–3 stay as they are
      expect(s.state.attention).toMatchObject({ kind: 'compensation-failed', step: 2, error: nobody, uncompensatedSteps: [1, 3, 4, 5] });
      expect(ofKind(s.log, 'compensate').map((c) => c.step)).toEqual(Array(6).fill(2));
      expect(s.state.cause).toMatchObject({ kind: 'step-failed', step: 6 });
    });

    it('an answer in between starts the clock again, and an answer that fails counts against maxCompensationAttempts', () => {
      const s = rollingBackTo2();
      unanswered(s);
      const answered = { code: 'AGENT_FAILED', message: 'QMP quit failed', retryable: true };
      s.when({ type: 'compensation-failed', step: 2, attempt: 2, error: answered }, s.now + 50_000);
      const [c] = ofKind(unanswered(s, s.now + 30_000), 'compensate');
      expect(c).toMatchObject({ step: 2, attempt: 4 });
      const out = s.when({ type: 'compensation-failed', step: 2, attempt: 4, error: answered });
      expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    });

    it('a state persisted before the field existed is waited for the same way', () => {
      const s = rollingBackTo2();
      delete s.state.steps[1].compensation!.unreachableSince;
      for (let i = 0; i < 4; i++) expect(kinds(unanswered(s))).toEqual(['compensate:2']);
    });
  });

  it('a non-retryable compensation failure is escalated at once and no further compensation runs', () => {
    const s = Saga.runningAt(3);
    s.fail(3);
    const out = s.when({ type: 'compensation-failed', step: 2, error: { code: 'INTERNAL', message: 'libvirt crashed', retryable: false } });
    expect(kinds(out)).toEqual(['publish:migration.failed', 'finish:failed-needs-attention']);
    expect(ofKind(s.log, 'compensate').map((c) => c.step)).toEqual([2]);
  });

  it('a failed compensation after a cancel names both', () => {
    const s = Saga.runningAt(2);
    s.cancel('carol', 'wrong host');
    s.succeed(2);
    const out = s.when({ type: 'compensation-failed', step: 2, error: { code: 'INTERNAL', message: 'stuck', retryable: false } });
    const data = ofKind(out, 'publish')[0].data;
    expect(data).toMatchObject({ step: 2, code: 'INTERNAL', needsAttention: true, cause: { kind: 'cancelled', by: 'carol' } });
    expect(String(data.reason)).toContain('cancelled by carol');
  });
});

describe('resume-after-restart', () => {
  const resume = (s: Saga, at?: number): SagaAction[] => s.when({ type: 'resume-after-restart' }, at);

  it('in created: nothing (the runner sends start)', () => {
    expect(resume(new Saga())).toEqual([]);
  });

  it.each(ALL_STEPS)('step %i command in flight, before its deadline: the same attempt is re-sent, state unchanged', (n) => {
    const s = Saga.runningAt(n);
    const before = s.state;
    const out = resume(s);
    expect(s.state).toBe(before);
    expect(out).toEqual([expect.objectContaining({ kind: 'run-step', step: n, attempt: 1, deadline: before.steps[n - 1].deadline })]);
  });

  it.each(ALL_STEPS)('step %i command in flight, deadline passed: the agent is asked', (n) => {
    const s = Saga.runningAt(n);
    const out = resume(s, s.state.steps[n - 1].deadline! + 1);
    expect(kinds(out)).toEqual([`query-step:${n}`]);
    expect(s.state.steps[n - 1].inFlight).toBe('query');
  });

  it.each(ALL_STEPS)('step %i being queried: the query is re-sent', (n) => {
    const s = Saga.runningAt(n);
    s.timeout(n);
    expect(kinds(resume(s))).toEqual([`query-step:${n}`]);
  });

  it('a scheduled retry: re-sent with its original notBefore and attempt', () => {
    const s = Saga.runningAt(8);
    const [r] = ofKind(s.fail(8, true), 'run-step');
    expect(resume(s)).toEqual([r]);
  });

  it.each([1, 2, 3, 4, 5, 6] as StepNumber[])('compensation of step %i in flight: re-sent (same attempt; fresh deadline if it passed)', (n) => {
    const s = Saga.runningAt(n);
    s.cancel();
    s.succeed(n);
    const st = s.state.steps[n - 1];
    expect(st.status).toBe('compensating');
    const out = resume(s);
    expect(out).toEqual([expect.objectContaining({ kind: 'compensate', step: n, attempt: 1, deadline: st.compensation!.deadline })]);
    const late = resume(s, st.compensation!.deadline + 10);
    expect(late).toEqual([expect.objectContaining({ kind: 'compensate', step: n, attempt: 1, deadline: s.now + 60_000 })]);
  });

  it('in a terminal phase: nothing', () => {
    const s = Saga.runningAt(1);
    s.fail(1);
    expect(resume(s)).toEqual([]);
  });
});

describe('queries', () => {
  it('summary lists every step with status and ISO times', () => {
    const s = Saga.runningAt(3);
    s.fail(3, true);
    const sum = summarize(s.state);
    expect(sum).toMatchObject({ migrationId: REF.migrationId, phase: 'running', terminal: false, cancellable: true, pointOfNoReturnPassed: false, currentStep: { step: 3, attempt: 2, status: 'running' } });
    expect(sum.steps[0]).toMatchObject({ step: 1, name: 'verify-compatibility', actor: 'scheduler', status: 'completed', durationMs: 1_000, startedAt: new Date(T0 + 1_000).toISOString() });
    expect(sum.steps[2]).toMatchObject({ status: 'running', attempt: 2, lastError: { code: 'AGENT_FAILED' }, endedAt: null });
    expect(sum.steps[8]).toMatchObject({ status: 'pending', startedAt: null, durationMs: null });
  });
  it('pointOfNoReturnPassed: only once step 7 was issued, not when it was skipped', () => {
    const r = Saga.runningAt(2);
    r.fail(2);
    r.compensated(1);
    expect(summarize(r.state)).toMatchObject({ phase: 'rolled-back', pointOfNoReturnPassed: false, cancellable: false });
    expect(summarize(Saga.runningAt(7).state).pointOfNoReturnPassed).toBe(true);
  });
  it('summary shows compensation progress', () => {
    const s = Saga.runningAt(3);
    s.fail(3);
    s.compensated(2);
    const sum = summarize(s.state);
    expect(sum.steps[1].compensation).toMatchObject({ name: 'destroy-incoming-vm', attempt: 1 });
    expect(sum.steps[1].status).toBe('compensated');
    expect(sum.currentStep).toMatchObject({ step: 1, status: 'compensating' });
  });
});

describe('JSON', () => {
  it('the state survives JSON.stringify/parse at every point of a run', () => {
    const s = Saga.runningAt(4);
    s.timeout(4);
    s.cancel();
    s.resolve(4, 'completed');
    const copy = JSON.parse(JSON.stringify(s.state));
    expect(copy).toStrictEqual(s.state);
    expect(step(copy, { type: 'compensation-succeeded', step: 4 }, s.now + 1)).toStrictEqual(step(s.state, { type: 'compensation-succeeded', step: 4 }, s.now + 1));
  });
});
