import { sleep } from '@flexmig/timing';

/**
 * The real-time side of the sim driver: how long it waits between two looks at the model. The model
 * (`@flexmig/migration-model`) has no clock; the driver maps simulated ms to real ms with its time
 * scale and waits on one of these. Tests inject a {@link VirtualClock} so that a ten-minute simulated
 * migration runs in microseconds and still exercises every progress tick.
 */
export interface SimClock {
  /** Milliseconds on this clock's own axis (Date.now for the real one). */
  now(): number;
  /**
   * Resolves after `ms` on this clock, or at once when `signal` aborts (never rejects), so a
   * cancelled transfer stops within a tick. `ms` of 0 still yields to the event loop.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time and timers. */
export const realClock: SimClock = {
  now: () => Date.now(),
  sleep,
};

/**
 * A clock that moves only when slept on: every `sleep(ms)` advances it by `ms` and resolves on the
 * next macrotask (so other code, e.g. a test that cancels, gets to run in between). Deterministic: the
 * elapsed time of a run on it is exactly what the driver waited.
 */
export class VirtualClock implements SimClock {
  private t = 0;
  /** Every sleep, in order: lets a test check the cadence of progress reports. */
  readonly sleeps: number[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    this.sleeps.push(ms);
    this.t += Math.max(0, ms);
    return new Promise((resolve) => setImmediate(resolve));
  }
}
