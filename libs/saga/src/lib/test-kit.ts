/* Test helpers for the saga specs (not exported from the library). */
import { createSaga } from './evolve';
import { step } from './decide';
import type { JsonValue, MigrationRef, SagaAction, SagaEvent, SagaPolicyInput, SagaState } from './types';
import type { StepNumber } from './steps';

export const REF: MigrationRef = {
  migrationId: '6f1c1a52-6c1e-4d0b-9f51-6d2f3c1b9a00',
  vmId: '0b7d5a8e-2f43-4c55-8a0e-3f9d1e6c7b11',
  sourceHostId: 'host-a',
  targetHostId: 'host-b',
};

export const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

/** A tiny clocked harness: each `when` advances the clock by `tick` ms unless told the time. */
export class Saga {
  state: SagaState;
  now: number;
  /** Every action ever emitted, in order. */
  log: SagaAction[] = [];
  constructor(policy: SagaPolicyInput = {}, public tick = 1_000) {
    this.now = T0;
    this.state = createSaga(REF, T0, policy);
  }
  when(event: SagaEvent, at?: number): SagaAction[] {
    this.now = at ?? this.now + this.tick;
    const r = step(this.state, event, this.now);
    this.state = r.state;
    this.log.push(...r.actions);
    return r.actions;
  }
  attempt(n: StepNumber): number {
    return this.state.steps[n - 1].attempt;
  }
  succeed(n: StepNumber, result?: JsonValue): SagaAction[] {
    return this.when({ type: 'step-succeeded', step: n, attempt: this.attempt(n), ...(result !== undefined ? { result } : {}) });
  }
  fail(n: StepNumber, retryable = false, code = 'AGENT_FAILED', message = `step ${n} broke`): SagaAction[] {
    return this.when({ type: 'step-failed', step: n, attempt: this.attempt(n), error: { code, message, retryable } });
  }
  timeout(n: StepNumber): SagaAction[] {
    return this.when({ type: 'step-timed-out', step: n, attempt: this.attempt(n) });
  }
  resolve(n: StepNumber, outcome: 'completed' | 'not-started' | 'failed' | 'in-progress'): SagaAction[] {
    return this.when({ type: 'step-outcome-resolved', step: n, attempt: this.attempt(n), outcome });
  }
  compensated(n: StepNumber): SagaAction[] {
    return this.when({ type: 'compensation-succeeded', step: n, attempt: this.state.steps[n - 1].compensation?.attempt });
  }
  /**
   * Answers every compensation `out` and the ones after it call for, each succeeding: the steps in the order
   * undone, the compensation each was undone by, and the last actions.
   */
  compensateAll(out: SagaAction[]): { order: number[]; compensations: string[]; out: SagaAction[] } {
    const order: number[] = [];
    const compensations: string[] = [];
    while (ofKind(out, 'compensate').length) {
      const c = ofKind(out, 'compensate')[0];
      order.push(c.step);
      compensations.push(c.compensation);
      out = this.compensated(c.step);
    }
    return { order, compensations, out };
  }
  cancel(by = 'alice', reason = 'changed my mind'): SagaAction[] {
    return this.when({ type: 'cancel-requested', reason, by });
  }
  /** Started, with steps 1..n-1 completed and step n running (attempt 1). */
  static runningAt(n: StepNumber, policy: SagaPolicyInput = {}): Saga {
    const s = new Saga(policy);
    s.when({ type: 'start' });
    for (let i = 1; i < n; i++) s.succeed(i as StepNumber);
    return s;
  }
}

export const kinds = (actions: SagaAction[]): string[] =>
  actions.map((a) => (a.kind === 'publish' ? `publish:${a.type}` : a.kind === 'finish' ? `finish:${a.outcome}` : `${a.kind}:${a.step}`));

export const ofKind = <K extends SagaAction['kind']>(actions: SagaAction[], kind: K): Extract<SagaAction, { kind: K }>[] =>
  actions.filter((a): a is Extract<SagaAction, { kind: K }> => a.kind === kind);

export const PRE_PONR: StepNumber[] = [1, 2, 3, 4, 5, 6];
export const ALL_STEPS: StepNumber[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
