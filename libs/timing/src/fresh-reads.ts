/**
 * Reads asked for at the same time share one read, and no caller gets a read that started before it
 * asked: at most one read per key is in flight; the callers that arrive meanwhile wait for it to settle
 * and then share the next one, which starts then. A caller sees data at least as fresh as a read of its
 * own would have shown, so this is not a cache: it only takes away the reads a burst would have sent in
 * parallel (placement of an evacuation's VMs, each reading its cluster's 1,000 hosts). A read that fails
 * fails for the callers who shared it, and the next caller starts a new one.
 */
export class FreshReads<K, T> {
  private readonly keys = new Map<K, { running: Promise<T>; next: Promise<T> | null }>();

  constructor(private readonly read: (key: K) => Promise<T>) {}

  get(key: K): Promise<T> {
    const now = this.keys.get(key);
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
    // a read that throws synchronously still clears its key: the promise is made before it is kept
    const running = Promise.resolve()
      .then(() => this.read(key))
      .finally(() => {
        const now = this.keys.get(key);
        if (now?.running === running && now.next === null) this.keys.delete(key);
      });
    this.keys.set(key, { running, next: null });
    return running;
  }
}
