import { createSaga, step } from '@flexmig/saga';
import type { SagaEvent, SagaState, StepNumber } from '@flexmig/saga';
import { abandonedAfter, dueAt } from './due-time';

const T0 = Date.UTC(2026, 0, 1, 12);
const ref = { migrationId: 'm-1', vmId: 'vm-1', sourceHostId: 'src', targetHostId: 'dst' };
const policy = { backoff: { initialMs: 1_000, multiplier: 2, maxMs: 10_000 }, inProgressPollMs: 3_000 };
const boom = (retryable: boolean) => ({ code: 'AGENT_FAILED', message: 'boom', retryable });

/** A saga driven through `events`, each applied `1 s` after the one before. */
function drive(events: SagaEvent[]): { state: SagaState; at: number } {
  let state = createSaga(ref, T0, policy);
  let at = T0;
  for (const e of events) {
    at += 1_000;
    state = step(state, e, at).state;
  }
  return { state, at };
}
const succeed = (n: StepNumber): SagaEvent => ({ type: 'step-succeeded', step: n, attempt: 1 });
const upTo = (n: number): SagaEvent[] => Array.from({ length: n }, (_, i) => succeed((i + 1) as StepNumber));

describe('dueAt: when a migration’s next action is due', () => {
  it('is never for a migration that has not started or has ended', () => {
    expect(dueAt(createSaga(ref, T0, policy), T0)).toBeNull();
    const { state, at } = drive([{ type: 'start' }, ...upTo(9)]);
    expect(state.phase).toBe('completed');
    expect(dueAt(state, at)).toBeNull();
  });

  it('is at once for a command just issued (the runner sends it after the commit; the pass, if it did not)', () => {
    const { state, at } = drive([{ type: 'start' }]);
    expect(dueAt(state, at)).toBe(at);
    const next = drive([{ type: 'start' }, succeed(1)]);
    expect(next.state.steps[1].status).toBe('running');
    expect(dueAt(next.state, next.at)).toBe(next.at);
  });

  it('is the retry’s notBefore when a failed attempt waits for its backoff', () => {
    const { state, at } = drive([{ type: 'start' }, { type: 'step-failed', step: 1, attempt: 1, error: boom(true) }]);
    expect(state.steps[0].attempt).toBe(2);
    expect(dueAt(state, at)).toBe(at + 1_000);
    expect(dueAt(state, at)).toBe(state.steps[0].notBefore);
  });

  it('is at once for the first query after a deadline, then each later query’s notBefore', () => {
    const timedOut = drive([{ type: 'start' }, { type: 'step-timed-out', step: 1, attempt: 1 }]);
    expect(timedOut.state.steps[0].inFlight).toBe('query');
    expect(dueAt(timedOut.state, timedOut.at)).toBe(timedOut.at);
    const unanswered = drive([{ type: 'start' }, { type: 'step-timed-out', step: 1, attempt: 1 }, { type: 'step-query-failed', step: 1, attempt: 1, error: boom(true) }]);
    expect(dueAt(unanswered.state, unanswered.at)).toBe(unanswered.at + 1_000);
    const inProgress = drive([{ type: 'start' }, { type: 'step-timed-out', step: 1, attempt: 1 }, { type: 'step-outcome-resolved', step: 1, attempt: 1, outcome: 'in-progress' }]);
    expect(dueAt(inProgress.state, inProgress.at)).toBe(inProgress.at + 3_000);
  });

  it('is at once for a compensation just issued, and its notBefore when a failed one waits to be retried', () => {
    const rolling = drive([{ type: 'start' }, succeed(1), { type: 'step-failed', step: 2, attempt: 1, error: boom(false) }]);
    expect(rolling.state.phase).toBe('compensating');
    expect(dueAt(rolling.state, rolling.at)).toBe(rolling.at);
    const retried = drive([
      { type: 'start' },
      succeed(1),
      { type: 'step-failed', step: 2, attempt: 1, error: boom(false) },
      { type: 'compensation-failed', step: 1, attempt: 1, error: boom(true) },
    ]);
    expect(retried.state.steps[0].compensation?.attempt).toBe(2);
    expect(dueAt(retried.state, retried.at)).toBe(retried.at + 1_000);
  });
});

describe('abandonedAfter: when an action in progress counts as lost', () => {
  const now = T0;
  it('is its deadline plus the grace when the deadline is ahead', () => {
    expect(abandonedAfter({ deadline: now + 60_000 }, now, 1_000, 2_000)).toBe(now + 62_000);
  });
  it('is at least the fallback bound ahead (a query; a deadline already past)', () => {
    expect(abandonedAfter({}, now, 30_000, 2_000)).toBe(now + 32_000);
    expect(abandonedAfter({ deadline: now - 5_000 }, now, 1_000, 2_000)).toBe(now + 3_000);
  });
});
