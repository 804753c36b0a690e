import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What a log line is about, as fields of the JSON line (docs/observability.md). Set where a migration
 * is handled (the scheduler's step runs, the agent's step and compensation handlers, inventory's
 * reservation and relocation handlers); every log call made inside, however deep, carries them.
 */
export interface LogFields {
  migrationId?: string;
  vmId?: string;
  hostId?: string;
  /** The saga step's number (1–9). */
  step?: number;
  /** The saga step's name (`transfer-memory`). */
  stepName?: string;
}

const fields = new AsyncLocalStorage<LogFields>();

/** Runs `fn` with these fields added to the current ones (undefined values leave a field as it is). */
export function withLogFields<T>(add: LogFields, fn: () => T): T {
  const merged: LogFields = { ...fields.getStore() };
  for (const [k, v] of Object.entries(add) as [keyof LogFields, never][]) if (v !== undefined) merged[k] = v;
  return fields.run(merged, fn);
}

/** The fields in force here ({} outside any). */
export function currentLogFields(): LogFields {
  return fields.getStore() ?? {};
}
