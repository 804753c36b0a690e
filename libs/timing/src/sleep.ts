/**
 * Resolves after `ms`, or at once when `signal` aborts; never rejects, so a cancelled wait needs no
 * try/catch and the caller checks its own signal afterwards. Below 1 ms (0, negative) it yields to the
 * event loop once: a timer would round up to 1 ms, which a loop of zero-length waits (the sim driver at
 * time scale 0) would pay on every turn.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = ms >= 1 ? setTimeout(done, ms) : undefined;
    const immediate = ms >= 1 ? undefined : setImmediate(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}
