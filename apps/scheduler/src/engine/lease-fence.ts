import { performance } from 'node:perf_hooks';

/** A monotonic clock in ms (performance.now): it keeps running while the process is frozen (SIGSTOP). */
export type MonotonicClock = () => number;

/** Thrown instead of sending: this replica does not know that it still holds the migration's lease. */
export class LeaseNotHeld extends Error {
  constructor(readonly migrationId: string, why: string) {
    super(`migration ${migrationId}: not sent, this replica does not hold its lease (${why}); the replica that holds it drives it, or this one re-issues it once its lease is renewed`);
  }
}

/**
 * Sends nothing for a migration whose lease this replica may have lost (docs/migrations.md, "Fencing").
 *
 * A lease is a row in PostgreSQL (`lease_until`, PostgreSQL's clock). A replica frozen (SIGSTOP), or cut off
 * from PostgreSQL, cannot read that row when its timers fire, so it keeps its own, conservative copy on its
 * MONOTONIC clock: a lease granted or renewed by a statement sent at `t` (taken before sending: PostgreSQL
 * wrote `lease_until` = its now + TTL later than that) is held until `t + TTL − margin`. The monotonic clock
 * advances while the process is stopped, so a timer that fires late after SIGCONT finds the lease expired;
 * a replica cut off from PostgreSQL stops renewing, and its copy expires before any other replica can claim.
 * The margin covers the time from the check to the command's arrival, and clock-rate differences.
 *
 * Pure: the clock is injected; the store tells it what it granted, renewed and released.
 */
export class LeaseFence {
  /** Per migration: the monotonic time at which the statement that last granted or renewed its lease was sent. */
  private readonly grantedAt = new Map<string, number>();
  readonly marginMs: number;

  constructor(private readonly ttlMs: number, private readonly now: MonotonicClock = () => performance.now(), marginMs?: number) {
    this.marginMs = marginMs ?? Math.min(1_000, ttlMs / 4);
  }

  /** The time to stamp a lease statement with: call it before sending the statement. */
  mark(): number {
    return this.now();
  }

  /** The statement sent at `sentAt` granted (admission, a claim) or renewed the leases of `ids`. */
  granted(ids: Iterable<string>, sentAt: number): void {
    for (const id of ids) this.grantedAt.set(id, Math.max(sentAt, this.grantedAt.get(id) ?? -Infinity));
  }

  /**
   * The renewal sent at `sentAt` renewed exactly `ids`: the leases it did not renew were lost (another
   * replica claimed them, or they ended), unless they were granted after it was sent.
   */
  renewed(ids: Iterable<string>, sentAt: number): void {
    const renewed = new Set(ids);
    for (const [id, at] of this.grantedAt) if (!renewed.has(id) && at < sentAt) this.grantedAt.delete(id);
    this.granted(renewed, sentAt);
  }

  /** The migration ended, or its lease was given up. */
  release(id: string): void {
    this.grantedAt.delete(id);
  }

  releaseAll(): void {
    this.grantedAt.clear();
  }

  /** How long (ms) the lease of `id` is known to be held still; ≤ 0: not known to be held. */
  remainingMs(id: string): number {
    const at = this.grantedAt.get(id);
    return at === undefined ? -Infinity : at + this.ttlMs - this.marginMs - this.now();
  }

  /** Throws LeaseNotHeld unless the lease of `id` is known to be held (call it right before every send). */
  check(id: string): void {
    const left = this.remainingMs(id);
    if (left > 0) return;
    throw new LeaseNotHeld(id, left === -Infinity ? 'never granted here, or lost to another replica' : `not renewed for ${Math.round(this.ttlMs - this.marginMs - left)} ms`);
  }
}
