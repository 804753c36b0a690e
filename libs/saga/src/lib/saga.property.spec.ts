import fc from 'fast-check';
import {
  POINT_OF_NO_RETURN,
  createSaga,
  inFlightActions,
  isTerminal,
  step,
  type SagaAction,
  type SagaEvent,
  type SagaState,
  type StepNumber,
  type StepOutcome,
  type JsonValue,
} from '../index';
import { REF, T0 } from './test-kit';

/**
 * Random event sequences. Most moves answer whatever is in flight (so runs get deep into the saga);
 * the rest are cancels, restarts and arbitrary (often stale) events.
 */
type Move =
  | { m: 'answer'; how: 'ok' | 'fail' | 'timeout' | 'resolve' | 'unreachable'; retryable: boolean; outcome: StepOutcome; dt: number; paused: boolean; resumed: boolean }
  | { m: 'cancel'; dt: number }
  | { m: 'resume'; dt: number }
  | { m: 'start'; dt: number }
  | { m: 'random'; event: SagaEvent; dt: number };

const stepArb = fc.integer({ min: 0, max: 10 }) as fc.Arbitrary<StepNumber>;
const attemptArb = fc.integer({ min: 0, max: 6 });
const errorArb = fc.record({ code: fc.constantFrom('AGENT_FAILED', 'UNAVAILABLE', 'TIMEOUT'), message: fc.string({ maxLength: 8 }), retryable: fc.boolean() });
const outcomeArb = fc.constantFrom<StepOutcome>('completed', 'not-started', 'failed', 'in-progress');
const dtArb = fc.integer({ min: 0, max: 120_000 });

const randomEventArb: fc.Arbitrary<SagaEvent> = fc.oneof(
  fc.constant<SagaEvent>({ type: 'start' }),
  fc.record({ type: fc.constant('step-succeeded' as const), step: stepArb, attempt: attemptArb }),
  fc.record({ type: fc.constant('step-failed' as const), step: stepArb, attempt: attemptArb, error: errorArb }),
  fc.record({ type: fc.constant('step-timed-out' as const), step: stepArb, attempt: attemptArb }),
  fc.record({ type: fc.constant('step-outcome-resolved' as const), step: stepArb, attempt: attemptArb, outcome: outcomeArb }),
  fc.record({ type: fc.constant('step-query-failed' as const), step: stepArb, attempt: attemptArb, error: errorArb }),
  fc.record({ type: fc.constant('compensation-succeeded' as const), step: stepArb }),
  fc.record({ type: fc.constant('compensation-failed' as const), step: stepArb, error: errorArb }),
  fc.record({ type: fc.constant('compensation-timed-out' as const), step: stepArb, attempt: attemptArb }),
  fc.constant<SagaEvent>({ type: 'cancel-requested', reason: 'r', by: 'fuzz' }),
  fc.constant<SagaEvent>({ type: 'resume-after-restart' }),
);

const moveArb: fc.Arbitrary<Move> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ m: fc.constant('answer' as const), how: fc.constant('ok' as const), retryable: fc.boolean(), outcome: outcomeArb, dt: dtArb, paused: fc.boolean(), resumed: fc.boolean() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      m: fc.constant('answer' as const),
      how: fc.constantFrom('fail' as const, 'timeout' as const, 'resolve' as const, 'unreachable' as const),
      retryable: fc.boolean(),
      outcome: outcomeArb,
      dt: dtArb,
      paused: fc.boolean(),
      resumed: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('cancel' as const), dt: dtArb }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('resume' as const), dt: dtArb }) },
  { weight: 1, arbitrary: fc.record({ m: fc.constant('start' as const), dt: dtArb }) },
  { weight: 2, arbitrary: fc.record({ m: fc.constant('random' as const), event: randomEventArb, dt: dtArb }) },
);

function eventFor(move: Move, state: SagaState): SagaEvent {
  switch (move.m) {
    case 'start':
      return { type: 'start' };
    case 'cancel':
      return { type: 'cancel-requested', reason: 'fuzz', by: 'fuzz' };
    case 'resume':
      return { type: 'resume-after-restart' };
    case 'random':
      return move.event;
    case 'answer': {
      const [a] = inFlightActions(state);
      if (!a) return state.phase === 'created' ? { type: 'start' } : { type: 'resume-after-restart' };
      const error = { code: 'AGENT_FAILED', message: 'fuzz', retryable: move.retryable };
      if (a.kind === 'compensate') {
        if (move.how === 'ok') return { type: 'compensation-succeeded', step: a.step, attempt: a.attempt };
        if (move.how === 'timeout') return { type: 'compensation-timed-out', step: a.step, attempt: a.attempt };
        if (move.how === 'unreachable') return { type: 'compensation-failed', step: a.step, attempt: a.attempt, error: { ...error, code: 'UNAVAILABLE' } };
        return { type: 'compensation-failed', step: a.step, attempt: a.attempt, error };
      }
      if (a.kind === 'run-step' || a.kind === 'query-step') {
        // a step 4 may end with the guest paused (the qemu driver's pre-switchover): step 5 is then done with it;
        // a step 6 may end with the guest running on the target: step 7 is then done with it
        const result: { result?: JsonValue } =
          move.paused && a.step === 4
            ? { result: { pausedAt: new Date(T0).toISOString() } }
            : move.resumed && a.step === 6
              ? { result: { target: { resumedAt: new Date(T0).toISOString() } } }
              : {};
        if (move.how === 'ok') return { type: 'step-succeeded', step: a.step, attempt: a.attempt, ...result };
        if (move.how === 'fail') return { type: 'step-failed', step: a.step, attempt: a.attempt, error };
        if (move.how === 'timeout') return { type: 'step-timed-out', step: a.step, attempt: a.attempt };
        if (move.how === 'unreachable') return { type: 'step-query-failed', step: a.step, attempt: a.attempt, error: { ...error, code: 'UNAVAILABLE' } };
        return { type: 'step-outcome-resolved', step: a.step, attempt: a.attempt, outcome: move.outcome, ...(move.outcome === 'completed' ? result : {}) };
      }
      return { type: 'resume-after-restart' };
    }
  }
}

interface Trace {
  states: SagaState[];
  batches: { event: SagaEvent; at: number; actions: SagaAction[]; before: SagaState; after: SagaState }[];
}

const outcomeUnknownLimitMs = 300_000;

function play(moves: Move[]): Trace {
  let state = createSaga(REF, T0, { maxAttempts: 3, maxResumeTargetAttempts: 4, maxCompensationAttempts: 2, maxFinishAttempts: 4, outcomeUnknownLimitMs });
  let now = T0;
  const trace: Trace = { states: [state], batches: [] };
  for (const move of moves) {
    now += move.dt;
    const event = eventFor(move, state);
    const r = step(state, event, now);
    trace.batches.push({ event, at: now, actions: r.actions, before: state, after: r.state });
    state = r.state;
    trace.states.push(state);
  }
  return trace;
}

/**
 * Independent oracle: the steps whose success (reply or resolved outcome) was accepted for the attempt in
 * flight; with a step 4 whose result carries a pause time, step 5 too (it was done with it).
 */
function acceptedSuccesses(b: Trace['batches'][number]): number[] {
  const e = b.event;
  const ok = e.type === 'step-succeeded' || (e.type === 'step-outcome-resolved' && e.outcome === 'completed');
  if (!ok || b.before.phase !== 'running' || !(e.step >= 1 && e.step <= 9)) return [];
  const st = b.before.steps[e.step - 1];
  if (st.status !== 'running' || st.attempt !== e.attempt) return [];
  const paused = typeof (e.result as { pausedAt?: unknown } | undefined)?.pausedAt === 'string';
  if (e.step === 4 && paused && b.before.steps[4].status === 'pending') return [4, 5];
  const resumed = typeof (e.result as { target?: { resumedAt?: unknown } } | undefined)?.target?.resumedAt === 'string';
  if (e.step === 6 && resumed && b.before.steps[6].status === 'pending') return [6, 7];
  return [e.step];
}

/** The target may run the guest: step 7 was issued, or done with step 6. */
const pastPointOfNoReturn = (s: SagaState): boolean => !['pending', 'skipped'].includes(s.steps[POINT_OF_NO_RETURN - 1].status);

const movesArb = fc.array(moveArb, { minLength: 1, maxLength: 80 });
const runs = { numRuns: 500 };

describe('saga properties over random event sequences', () => {
  it("never compensates a step that did not complete, and compensates in reverse order, the target's copy first once step 6 was sent", () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        const completed = new Set<number>();
        let sixSent = false;
        /** Each step as it is first compensated (its retries follow it at once). */
        const order: number[] = [];
        for (const b of play(moves).batches) {
          const ks = acceptedSuccesses(b);
          for (const k of ks) completed.add(k);
          // step-completed is published exactly for the accepted successes
          const published = b.actions.filter((a) => a.kind === 'publish' && a.type === 'migration.step-completed');
          expect(published.map((a) => (a.kind === 'publish' ? a.data.step : null))).toEqual(ks);
          for (const a of b.actions) {
            if (a.kind === 'run-step' && a.step === 6) sixSent = true;
            if (a.kind === 'compensate') {
              expect(completed.has(a.step)).toBe(true);
              expect(a.step).toBeLessThan(POINT_OF_NO_RETURN);
              if (order.at(-1) !== a.step) {
                expect(order).not.toContain(a.step); // each step undone once
                order.push(a.step);
              }
              // once step 6 was sent, nothing resumes the source (3–5) before the target's copy was undone (6 or 2)
              if (sixSent && a.step >= 3 && a.step <= 5) expect(order.includes(6) || order.includes(2)).toBe(true);
            }
          }
        }
        // reverse order, but for step 2 moved to the front when step 6 was sent
        const rest = sixSent && order[0] === 2 ? order.slice(1) : order;
        expect(rest).toEqual([...rest].sort((x, y) => y - x));
      }),
      runs,
    );
  });

  it('never runs step N+1 before step N completed, and never retries 1–6 beyond maxAttempts', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        const completed = new Set<number>();
        for (const b of play(moves).batches) {
          const ks = acceptedSuccesses(b);
          for (const a of b.actions) {
            if (a.kind === 'run-step') {
              if (a.step > 1) expect(completed.has(a.step - 1) || ks.includes(a.step - 1)).toBe(true);
              expect(completed.has(a.step)).toBe(false);
              if (a.step < POINT_OF_NO_RETURN) expect(a.attempt).toBeLessThanOrEqual(3);
              if (a.step === POINT_OF_NO_RETURN) expect(a.attempt).toBeLessThanOrEqual(4);
            }
          }
          for (const k of ks) completed.add(k);
        }
      }),
      runs,
    );
  });

  it('gives up a compensation its agent cannot answer only after outcomeUnknownLimitMs of silence', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        for (const b of play(moves).batches) {
          if (b.before.phase !== 'compensating' || b.after.attention?.kind !== 'compensation-failed') continue;
          const e = b.event;
          const silent = e.type === 'compensation-timed-out' || (e.type === 'compensation-failed' && ['UNAVAILABLE', 'TIMEOUT'].includes(e.error.code) && e.error.retryable);
          if (!silent) continue;
          const since = b.before.steps[b.after.attention.step - 1].compensation?.unreachableSince ?? b.at;
          expect(b.at - since).toBeGreaterThanOrEqual(outcomeUnknownLimitMs);
        }
      }),
      runs,
    );
  });

  it('once step 7 was issued (or done with step 6), nothing is ever compensated and the outcome is never rolled-back or cancelled', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        let issued7 = false;
        for (const b of play(moves).batches) {
          if (pastPointOfNoReturn(b.after)) issued7 = true;
          for (const a of b.actions) {
            if (a.kind === 'run-step' && a.step === POINT_OF_NO_RETURN) issued7 = true;
            if (issued7) {
              expect(a.kind).not.toBe('compensate');
              if (a.kind === 'finish') expect(['completed', 'failed-needs-attention']).toContain(a.outcome);
              if (a.kind === 'publish') expect(['migration.rolled-back', 'migration.cancelled']).not.toContain(a.type);
            }
          }
          if (issued7) expect(b.after.steps.some((st) => st.status === 'compensating' || st.status === 'compensated')).toBe(false);
        }
      }),
      runs,
    );
  });

  it('after an accepted cancel, no new command is sent (only the one in flight is awaited) and step 7 never runs, unless step 6 in flight started the guest', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        let inFlightAtCancel: string | null | undefined; // undefined: no cancel yet
        for (const b of play(moves).batches) {
          // the step 6 awaited ended with the guest running on the target: too late for the cancel, only forward
          if (inFlightAtCancel?.startsWith('6:') && pastPointOfNoReturn(b.after)) inFlightAtCancel = undefined;
          if (inFlightAtCancel !== undefined) {
            for (const a of b.actions) {
              if (a.kind === 'run-step') expect(`${a.step}:${a.attempt}`).toBe(inFlightAtCancel);
            }
            if (b.after.phase !== 'running' && b.after.phase !== 'compensating') {
              expect(['cancelled', 'failed-needs-attention']).toContain(b.after.phase);
            }
          } else if (b.before.cancel === null && b.after.cancel !== null && !pastPointOfNoReturn(b.after)) {
            expect(b.actions.filter((a) => a.kind !== 'publish' && a.kind !== 'finish')).toEqual([]);
            const running = b.after.steps.find((st) => st.status === 'running');
            inFlightAtCancel = running ? `${running.step}:${running.attempt}` : null;
            expect(['pending', 'skipped']).toContain(b.after.steps[POINT_OF_NO_RETURN - 1].status);
          }
        }
      }),
      runs,
    );
  });

  it('a terminal saga emits nothing further and does not change; finish is emitted exactly once, on entering it', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        let finishes = 0;
        for (const b of play(moves).batches) {
          const f = b.actions.filter((a) => a.kind === 'finish');
          finishes += f.length;
          if (isTerminal(b.before)) {
            expect(b.actions).toEqual([]);
            expect(b.after).toBe(b.before);
          }
          expect(f.length === 1).toBe(!isTerminal(b.before) && isTerminal(b.after));
          if (f.length) expect(b.actions[b.actions.length - 1].kind).toBe('finish');
        }
        expect(finishes).toBeLessThanOrEqual(1);
      }),
      runs,
    );
  });

  it('does one thing at a time, and a running saga always has exactly one step in flight', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        for (const s of play(moves).states) {
          const inFlight = s.steps.filter((st) => st.status === 'running' || st.status === 'compensating');
          expect(inFlight.length).toBeLessThanOrEqual(1);
          if (s.phase === 'running' || s.phase === 'compensating') expect(inFlight).toHaveLength(1);
          expect(inFlightActions(s).length).toBe(isTerminal(s) ? 0 : inFlight.length);
        }
      }),
      runs,
    );
  });

  it("keeps the first cause: once set it never changes (a cancel's is dropped only when step 6 started the guest before it could act)", () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        let first: string | null = null;
        for (const s of play(moves).states) {
          if (first !== null && s.cause === null) {
            expect(JSON.parse(first).kind).toBe('cancelled');
            expect(s.steps[POINT_OF_NO_RETURN - 1].result).toMatchObject({ doneWith: 6 });
            first = null;
          }
          if (s.cause) {
            const c = JSON.stringify(s.cause);
            if (first === null) first = c;
            expect(c).toBe(first);
          }
        }
      }),
      runs,
    );
  });

  it('ends in a state consistent with its outcome', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        const t = play(moves);
        const s = t.states[t.states.length - 1];
        const statuses = s.steps.map((st) => st.status);
        if (s.phase === 'completed') expect(statuses.every((x) => x === 'completed')).toBe(true);
        if (s.phase === 'rolled-back' || s.phase === 'cancelled') {
          // the VM is back on the source: every completed step was undone and step 7 never ran
          expect(statuses.includes('completed')).toBe(false);
          expect(statuses.slice(POINT_OF_NO_RETURN - 1).every((x) => x === 'skipped')).toBe(true);
          expect(s.cause?.kind).toBe(s.phase === 'cancelled' ? 'cancelled' : 'step-failed');
        }
        if (s.phase === 'failed-needs-attention') expect(s.attention).not.toBeNull();
      }),
      runs,
    );
  });

  it('the state is JSON round-trippable and a restored copy behaves identically', () => {
    fc.assert(
      fc.property(movesArb, fc.integer({ min: 0, max: 79 }), (moves, pick) => {
        const t = play(moves);
        for (const s of t.states) expect(JSON.parse(JSON.stringify(s))).toStrictEqual(s);
        const b = t.batches[pick % t.batches.length];
        const restored = JSON.parse(JSON.stringify(b.before)) as SagaState;
        const now = T0 + 1_000_000;
        expect(step(restored, b.event, now)).toStrictEqual(step(b.before, b.event, now));
      }),
      runs,
    );
  });

  it('evolve never mutates its input', () => {
    fc.assert(
      fc.property(movesArb, (moves) => {
        const t = play(moves);
        const snapshots = t.states.map((s) => JSON.stringify(s));
        // replaying the same events on the recorded states must leave them as they were
        t.batches.forEach((b, i) => step(b.before, b.event, T0 + i));
        expect(t.states.map((s) => JSON.stringify(s))).toEqual(snapshots);
      }),
      { numRuns: 100 },
    );
  });

  it('reaches every outcome (the generator is not trivially shallow)', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(movesArb, (moves) => {
        const t = play(moves);
        seen.add(t.states[t.states.length - 1].phase);
      }),
      { numRuns: 2000, seed: 42 },
    );
    expect([...seen]).toEqual(expect.arrayContaining(['completed', 'rolled-back', 'cancelled', 'failed-needs-attention']));
  });
});
