import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { performance } from 'node:perf_hooks';
import type { DataSource } from 'typeorm';

/**
 * A step's start and end, a lease's expiry and a migration's total time are written by whichever replica
 * happens to drive the migration. Subtracting two replicas' `Date.now()` turns their clock skew into the
 * figures (a replica an hour behind made negative durations, which broke the event contract and stopped the
 * outbox), and a lease stamped by a slow clock expires at once for everyone else. So the scheduler keeps
 * one clock, PostgreSQL's: each replica samples it (one SELECT per reconcile tick) and runs it forward on
 * its own monotonic clock in between, so a jump of the local wall clock changes nothing.
 */
@Injectable()
export class DbClock {
  private readonly log = new Logger('clock');
  /** PostgreSQL's time (epoch ms) at `anchorMono` (performance.now() of this process). */
  private anchorServer = Date.now();
  private anchorMono = performance.now();
  /** The last value handed out: re-anchoring may step back by the estimate's error, which is hidden. */
  private last = 0;
  private synced = false;

  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /** PostgreSQL's clock now, in epoch ms, never earlier than a value this replica returned before (but see `sync`). */
  now(): number {
    const t = Math.round(this.anchorServer + (performance.now() - this.anchorMono));
    this.last = Math.max(this.last, t);
    return this.last;
  }

  /**
   * Samples PostgreSQL's clock. Called at start and on every reconcile tick. The first sync takes the best of
   * FIRST_SYNC_SAMPLES: the first query of a process also opens its pool's connection, so PostgreSQL reads its
   * clock at the end of a long round trip, and the midpoint put two replicas' clocks tens of milliseconds apart
   * (a replica's step 1 dated before the other's step 9 that freed its slot, seen on CI).
   */
  async sync(): Promise<void> {
    let best = await this.sample();
    for (let i = 1; !this.synced && i < FIRST_SYNC_SAMPLES; i++) {
      const s = await this.sample();
      if (s.roundTripMs < best.roundTripMs) best = s;
    }
    const before = this.now();
    // the reading was taken somewhere in the round trip: the midpoint errs by at most half of it
    this.anchorServer = best.server;
    this.anchorMono = best.midpoint;
    const stepBack = before - Math.round(this.anchorServer + (performance.now() - this.anchorMono));
    if (stepBack > maxHiddenStepBackMs) {
      // PostgreSQL's own clock went back (or this is the first sample after a local estimate): follow it
      this.last = 0;
      if (this.synced) this.log.warn(`PostgreSQL's clock stepped back by ${stepBack} ms; following it`);
    }
    if (!this.synced) {
      const skew = Math.round(this.anchorServer - (Date.now() - (performance.now() - this.anchorMono)));
      if (Math.abs(skew) > 1_000) this.log.warn(`this machine's clock is ${skew > 0 ? 'behind' : 'ahead of'} PostgreSQL's by ${Math.abs(skew)} ms; the scheduler uses PostgreSQL's`);
      this.synced = true;
    }
  }

  /** One reading of PostgreSQL's clock, with when (this process's monotonic clock) and how long the round trip took. */
  private async sample(): Promise<{ server: number; midpoint: number; roundTripMs: number }> {
    const sentAt = performance.now();
    const [{ t }] = await this.db.query('SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS t');
    const receivedAt = performance.now();
    return { server: Number(t), midpoint: (sentAt + receivedAt) / 2, roundTripMs: receivedAt - sentAt };
  }
}

/** How many readings the first sync takes, keeping the one of the shortest round trip (as NTP does). */
const FIRST_SYNC_SAMPLES = 5;

/** Re-anchoring steps back by at most the estimate's error (half a round trip): hide that, follow anything bigger. */
const maxHiddenStepBackMs = 1_000;
