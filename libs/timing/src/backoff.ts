/**
 * A capped exponential schedule: the delay before retry n (n ≥ 1) is `initialMs · multiplier^(n−1)`,
 * rounded, at most `maxMs`. Plain JSON, so the saga can persist it in its policy.
 */
export interface BackoffSchedule {
  /** Delay before the first retry (ms). */
  initialMs: number;
  /** Growth from one retry to the next (≥ 1). */
  multiplier: number;
  /** Cap (ms): a caller that retries forever must stop growing its wait somewhere. */
  maxMs: number;
}

export interface Backoff extends BackoffSchedule {
  /**
   * Share of each delay drawn at random, 0 (none, the default) to 1: the delay is uniform in
   * `[d·(1 − jitter), d]`. Subtracted, so the cap stays a cap (see README.md).
   */
  jitter?: number;
}

/**
 * Delay (ms) before the `retry`-th retry (1 = the first); 0 for retry < 1. `random` returns a number in
 * [0, 1), like Math.random (inject it in tests); it is not called when there is no jitter.
 */
export function backoffDelayMs(backoff: Backoff, retry: number, random: () => number = Math.random): number {
  if (retry < 1) return 0;
  // Math.pow overflows to Infinity for a long retry streak: the cap absorbs it
  const delay = Math.min(backoff.maxMs, Math.round(backoff.initialMs * Math.pow(backoff.multiplier, retry - 1)));
  const jitter = Math.min(1, Math.max(0, backoff.jitter ?? 0));
  return jitter === 0 ? delay : Math.round(delay - delay * jitter * random());
}
