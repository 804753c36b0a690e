import type { JsonValue, SagaAction, SagaState } from '@flexmig/saga';
import { completionFigures } from '../figures';

export interface OutboxRow {
  event_id: string;
  type: string;
  subject: string;
  data: Record<string, JsonValue>;
}

/** The events a transition implies, as outbox rows (`migration.completed` gets its figures here). */
export function outboxRows(state: SagaState, actions: SagaAction[]): OutboxRow[] {
  return actions.flatMap((a) =>
    a.kind !== 'publish'
      ? []
      : [{ event_id: a.id, type: a.type, subject: a.subject, data: a.type === 'migration.completed' ? { ...a.data, ...completionFigures(state) } : a.data }],
  );
}
