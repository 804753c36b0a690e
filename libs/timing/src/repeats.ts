/**
 * A recurring failure said once per `everyMs`, not on every turn of its loop. While PostgreSQL or NATS is
 * away, inventory's loops (heartbeat flushes, the liveness sweep, the outbox) and the scheduler's tick fail
 * several times a second: about 3,600 lines an hour per loop and replica, which bury the one that says
 * what changed. A failure is said the first time at once, then at most once per `everyMs` with how often
 * it came meanwhile; another failure (another `key`, by default its text) is said at once. `recovered()`
 * says once that the loop works again, with how many failures it had.
 *
 * Pure: the lines go to `log` (a Nest Logger fits: failures to `warn`, the recovery to `log`), and the
 * clock is given.
 */
export class Repeats {
  private readonly seen = new Map<string, { saidAt: number; since: number }>();
  private failures = 0;

  constructor(
    private readonly log: { warn(line: string): void; log(line: string): void },
    private readonly everyMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** One failure: said now, or counted toward the next time it is said. */
  failed(line: string, key = line): void {
    this.failures++;
    const at = this.now();
    const s = this.seen.get(key);
    if (s && at - s.saidAt < this.everyMs) {
      s.since++;
      return;
    }
    this.log.warn(s?.since ? `${line} (${s.since} more time(s) in the last ${Math.round((at - s.saidAt) / 1000)} s)` : line);
    this.seen.set(key, { saidAt: at, since: 0 });
  }

  /** The loop worked again: says so once after failures (`what` names the loop), and starts over. */
  recovered(what: string): void {
    if (this.failures === 0) return;
    this.log.log(`${what} works again, after ${this.failures} failure(s)`);
    this.failures = 0;
    this.seen.clear();
  }
}
