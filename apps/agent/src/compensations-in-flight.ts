import type { Role, StepRecord } from '@flexmig/contracts';

interface Of {
  migrationId: string;
  step: number;
  role: Role;
}

const keyOf = (c: Of): string => `${c.migrationId}:${c.step}:${c.role}`;

/**
 * The compensations this agent runs now. A compensation sent again while one runs (the scheduler resends one
 * it got no answer to, StepExecutor.compensate) joins it: it waits for the same outcome, and the guest is
 * never destroyed or resumed by two calls at once. In memory on purpose: an agent that restarted runs none,
 * and says so, so that the scheduler sends its lost compensation again at once instead of waiting it out.
 */
export class CompensationsInFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** `undo`'s outcome; a caller that comes while the same compensation runs gets that one's. */
  run(c: Of, undo: () => Promise<T>): Promise<T> {
    const key = keyOf(c);
    const now = this.running.get(key);
    if (now) return now;
    const started = undo().finally(() => this.running.delete(key));
    this.running.set(key, started);
    return started;
  }

  /** The records as the query answers them: the step whose compensation runs now says so (`compensating`). */
  mark(migrationId: string, records: StepRecord[]): StepRecord[] {
    return records.map((r) => (this.running.has(keyOf({ migrationId, step: r.step, role: r.role })) ? { ...r, compensating: true } : r));
  }
}
