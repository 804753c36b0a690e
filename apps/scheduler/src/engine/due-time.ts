import { inFlightActions, isTerminal } from '@flexmig/saga';
import type { EpochMs, SagaState } from '@flexmig/saga';

/**
 * When a migration's next action is due, persisted as `migrations.due_at` with every saga state (pure).
 *
 * - The command, query or compensation in flight waits for a retry backoff: due at its `notBefore`.
 * - Otherwise it is due at once (`now`, the time of the transition that issued it): from then on it must be
 *   in progress somewhere. The replica that drives it runs it straight after the commit; if that run is lost
 *   (a dropped timer, a rejection, a restart), the next reconcile pass finds the row due and not in
 *   progress, and re-issues it as the saga dictates (`resume-after-restart`: the same attempt again,
 *   which agents answer with their first answer, or a query when its deadline has passed).
 * - Nothing to do (not started, terminal): null, and the row is never due.
 */
export function dueAt(state: SagaState, now: EpochMs): EpochMs | null {
  if (state.phase === 'created' || isTerminal(state)) return null;
  const [next] = inFlightActions(state);
  if (!next || next.kind === 'publish' || next.kind === 'finish') return null;
  return next.notBefore ?? now;
}

/**
 * How long an action this replica runs may go without an outcome before the pass treats it as lost:
 * its deadline (commands and compensations; the executor's own timeout ends it there), or `now + fallbackMs`
 * for a query (bounded by the bus's request timeout), plus `graceMs`.
 */
export function abandonedAfter(action: { deadline?: EpochMs }, now: EpochMs, fallbackMs: number, graceMs: number): EpochMs {
  return Math.max(action.deadline ?? 0, now + fallbackMs) + graceMs;
}
