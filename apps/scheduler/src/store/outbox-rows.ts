import type { PredictedFigures } from '@flexmig/contracts';
import type { JsonValue, SagaAction, SagaState } from '@flexmig/saga';
import { completionFigures } from '../figures';

export interface OutboxRow {
  event_id: string;
  type: string;
  subject: string;
  data: Record<string, JsonValue>;
}

/**
 * The events a transition implies, as outbox rows (`migration.completed` gets its figures here, and the
 * prediction made before the start beside them when there was one).
 */
export function outboxRows(state: SagaState, actions: SagaAction[], predicted?: PredictedFigures | null): OutboxRow[] {
  const completed = () => ({ ...completionFigures(state), ...(predicted ? { predicted: predicted as unknown as JsonValue } : {}) });
  return actions.flatMap((a) =>
    a.kind !== 'publish' ? [] : [{ event_id: a.id, type: a.type, subject: a.subject, data: a.type === 'migration.completed' ? { ...a.data, ...completed() } : a.data }],
  );
}
