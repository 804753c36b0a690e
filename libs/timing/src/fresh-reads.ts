/**
 * Reads asked for at the same time share one read, and no caller gets a read that started before it
 * asked: at most one read per key is in flight; the callers that arrive meanwhile wait for it to settle
 * and then share the next one, which starts then. A caller sees data at least as fresh as a read of its
 * own would have shown, so this is not a cache: it only takes away the reads a burst would have sent in
 * parallel (placement of an evacuation's VMs, each reading its cluster's 1,000 hosts). A read that fails
 * fails for the callers who shared it, and the next caller starts a new one.
 *
 * A caller may say how fresh is fresh enough (`startedAfter`, on this instance's clock): then any read of
 * the key that started at or after that moment will do, in flight or already answered (the last good one
 * is kept per key). A sequence of requests that belong together (an evacuation's placements, each
 * counting the ones before it by other means) reads once that way instead of once each.
 */
export class FreshReads<K, T> {
  private readonly keys = new Map<K, { running: Promise<T>; startedAt: number; next: Promise<T> | null }>();
  private readonly answered = new Map<K, { value: T; startedAt: number }>();

  constructor(
    private readonly read: (key: K) => Promise<T>,
    private readonly clock: () => number = Date.now,
  ) {}

  get(key: K, startedAfter?: number): Promise<T> {
    const now = this.keys.get(key);
    if (startedAfter !== undefined) {
      if (now && now.startedAt >= startedAfter) return now.running;
      const last = this.answered.get(key);
      if (last && last.startedAt >= startedAfter) return Promise.resolve(last.value);
    }
    if (!now) return this.start(key);
    // the read in flight started before this call: share the next one, started when this one settles
    now.next ??= now.running.then(
      () => this.start(key),
      () => this.start(key),
    );
    return now.next;
  }

  /** A read of its own; it becomes the running one (replacing the one it followed), and whoever arrives now shares the one after. */
  private start(key: K): Promise<T> {
    const startedAt = this.clock();
    // a read that throws synchronously still clears its key: the promise is made before it is kept
    const running = Promise.resolve()
      .then(() => this.read(key))
      .then((value) => {
        if ((this.answered.get(key)?.startedAt ?? -Infinity) <= startedAt) this.answered.set(key, { value, startedAt });
        return value;
      })
      .finally(() => {
        const now = this.keys.get(key);
        if (now?.running === running && now.next === null) this.keys.delete(key);
      });
    this.keys.set(key, { running, startedAt, next: null });
    return running;
  }
}
