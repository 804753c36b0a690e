import { evolve } from './evolve';
import { elapsedMs, isTerminal } from './queries';
import { stepDefinition } from './steps';
import type { EpochMs, JsonValue, SagaAction, SagaEvent, SagaState, StepResult, StepState } from './types';

/**
 * The actions an event calls for. Derived from the transition (state before → state after): a step
 * whose `dispatches` counter moved gets its command / query / compensation; a step that became
 * completed gets `migration.step-completed`; reaching a terminal phase gets its events and `finish`.
 * `resume-after-restart` re-derives the action of whatever is in flight.
 */
export function decide(state: SagaState, event: SagaEvent, now: EpochMs): SagaAction[] {
  return deriveActions(state, evolve(state, event, now), event);
}

/**
 * evolve + decide in one call: what a runner uses. Persist `state` (in the same transaction as the
 * actions, if you keep an outbox) BEFORE executing any action.
 */
export function step(state: SagaState, event: SagaEvent, now: EpochMs): StepResult {
  const next = evolve(state, event, now);
  return { state: next, actions: deriveActions(state, next, event) };
}

/** The actions that `prev → next` (caused by `event`) calls for. Exported for runners that evolve themselves. */
export function deriveActions(prev: SagaState, next: SagaState, event: SagaEvent): SagaAction[] {
  if (isTerminal(prev)) return [];
  const actions: SagaAction[] = [];
  for (let i = 0; i < next.steps.length; i++) {
    const before = prev.steps[i];
    const after = next.steps[i];
    // Not `status === 'completed'`: a step that completes while a cancel is pending is already `compensating`.
    if (before.completedAt === null && after.completedAt !== null) actions.push(stepCompleted(next, after));
  }
  if (event.type === 'resume-after-restart') {
    actions.push(...inFlightActions(next));
  } else {
    for (let i = 0; i < next.steps.length; i++) {
      if (next.steps[i].dispatches !== prev.steps[i].dispatches) {
        const a = inFlightAction(next, next.steps[i]);
        if (a) actions.push(a);
      }
    }
  }
  if (isTerminal(next)) actions.push(...terminalActions(next));
  return actions;
}

/** What is in flight right now, as actions (at most one: the saga does one thing at a time). */
export function inFlightActions(s: SagaState): SagaAction[] {
  if (isTerminal(s)) return [];
  return s.steps.map((st) => inFlightAction(s, st)).filter((a): a is SagaAction => a !== null);
}

function inFlightAction(s: SagaState, st: StepState): SagaAction | null {
  const d = stepDefinition(st.step);
  const migrationId = s.ref.migrationId;
  if (st.status === 'running' && st.inFlight === 'command') {
    return {
      kind: 'run-step',
      migrationId,
      step: st.step,
      name: st.name,
      actor: d.actor,
      attempt: st.attempt,
      idempotencyKey: `${migrationId}:${st.step}:${st.attempt}`,
      deadline: st.deadline!,
      notBefore: st.notBefore,
    };
  }
  if (st.status === 'running' && st.inFlight === 'query') {
    return { kind: 'query-step', migrationId, step: st.step, name: st.name, actor: d.actor, attempt: st.attempt, notBefore: st.notBefore };
  }
  if (st.status === 'compensating' && st.compensation && d.compensation) {
    return {
      kind: 'compensate',
      migrationId,
      step: st.step,
      name: st.name,
      actor: d.actor,
      compensation: d.compensation,
      attempt: st.compensation.attempt,
      deadline: st.compensation.deadline,
      notBefore: st.compensation.notBefore,
    };
  }
  return null;
}

const json = (v: unknown): JsonValue => v as JsonValue;

function stepCompleted(s: SagaState, st: StepState): SagaAction {
  return {
    kind: 'publish',
    id: `${s.ref.migrationId}:step-completed:${st.step}`,
    type: 'migration.step-completed',
    subject: s.ref.migrationId,
    data: {
      migrationId: s.ref.migrationId,
      vmId: s.ref.vmId,
      step: st.step,
      stepName: st.name,
      attempt: st.attempt,
      durationMs: elapsedMs(st.startedAt ?? 0, st.completedAt ?? 0) ?? 0,
    },
  };
}

const compensatedSteps = (s: SagaState): JsonValue => s.steps.filter((st) => st.status === 'compensated').map((st) => st.step);

function terminalActions(s: SagaState): SagaAction[] {
  const { migrationId, vmId, sourceHostId, targetHostId } = s.ref;
  const publish = (type: Extract<SagaAction, { kind: 'publish' }>['type'], suffix: string, data: { [k: string]: JsonValue }): SagaAction => ({
    kind: 'publish',
    id: `${migrationId}:${suffix}`,
    type,
    subject: migrationId,
    data: { migrationId, vmId, ...data },
  });
  const finish: SagaAction = { kind: 'finish', migrationId, outcome: s.phase as Extract<SagaAction, { kind: 'finish' }>['outcome'] };
  const totalTimeMs = s.startedAt !== null && s.endedAt !== null ? s.endedAt - s.startedAt : 0;

  switch (s.phase) {
    case 'completed':
      return [publish('migration.completed', 'completed', { sourceHostId, targetHostId, totalTimeMs }), finish];
    case 'rolled-back': {
      const cause = s.cause!;
      const failed = failureFacts(s);
      return [
        publish('migration.failed', 'failed', { ...failed, needsAttention: false, cause: json(cause), attention: null }),
        publish('migration.rolled-back', 'rolled-back', {
          step: failed.step,
          reason: failed.reason,
          hostId: sourceHostId,
          compensatedSteps: compensatedSteps(s),
        }),
        finish,
      ];
    }
    case 'cancelled':
      return [
        publish('migration.cancelled', 'cancelled', {
          reason: s.cancel?.reason ?? '',
          by: s.cancel?.by ?? '',
          compensatedSteps: compensatedSteps(s),
        }),
        finish,
      ];
    case 'failed-needs-attention':
      return [
        publish('migration.failed', 'failed', { ...failureFacts(s), needsAttention: true, cause: json(s.cause), attention: json(s.attention) }),
        finish,
      ];
    case 'created':
    case 'running':
    case 'compensating':
      return [];
    default: {
      const unreachable: never = s.phase;
      return unreachable;
    }
  }
}

/** step / stepName / code / reason for `migration.failed`: the first cause, or what failed when a cancel went wrong. */
function failureFacts(s: SagaState): { step: number; stepName: string; code: string; reason: string } {
  const cause = s.cause;
  if (cause?.kind === 'step-failed') {
    const extra = s.attention?.kind === 'compensation-failed' ? `; then compensation of step ${s.attention.step} failed: ${s.attention.error.message}` : '';
    return { step: cause.step, stepName: cause.name, code: cause.error.code, reason: cause.reason + extra };
  }
  if (s.attention) {
    const a = s.attention;
    const name = s.steps[a.step - 1].name;
    const first = cause?.kind === 'cancelled' ? `cancelled by ${cause.by} (${cause.reason}); then ` : '';
    return { step: a.step, stepName: name, code: a.error.code, reason: `${first}compensation of step ${a.step} failed: ${a.error.message}` };
  }
  return { step: 0, stepName: '', code: 'INTERNAL', reason: 'unknown' };
}
