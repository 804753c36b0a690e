import type { FlexmigError } from '@flexmig/contracts';

export interface TargetWatchOptions {
  /** How often the target is asked while the copy runs. */
  intervalMs: number;
  /** Why the copy must stop (the target lost its incoming VM, or does not answer), or undefined while all is well. Never rejects. */
  lost: () => Promise<FlexmigError | undefined>;
  /** Stops the copy (the driver's cancelTransfer). */
  stop: () => Promise<void>;
}

/**
 * Watches a source's memory copy (steps 3 and 4): every `intervalMs` while the copy runs, asks whether its
 * target still holds the incoming VM; when it does not, stops the copy and makes the copy's step fail with
 * that reason.
 *
 * A question still out when the step ends is dropped, whatever its answer. The step that follows may
 * already have stopped the guest at pre-switchover (step 4 ends there), and from then on only the saga
 * resumes the source: a late "target does not answer" (its agent killed just after step 6 was sent)
 * cancelled the switchover and resumed the source beside a target that could run the guest
 * (fault matrix: qemu:kill-target-agent@transfer-state).
 */
export class TargetWatch {
  constructor(private readonly o: TargetWatchOptions) {}

  async around<T>(work: () => Promise<T>): Promise<T> {
    let reason: FlexmigError | undefined;
    let asking = false;
    let ended = false;
    const timer = setInterval(() => {
      if (asking || reason || ended) return;
      asking = true;
      void this.o
        .lost()
        .catch(() => undefined)
        .then(async (lost) => {
          asking = false;
          if (!lost || ended) return;
          reason = lost;
          await this.o.stop().catch(() => undefined);
        });
    }, this.o.intervalMs);
    try {
      return await work();
    } catch (e) {
      throw reason ?? e;
    } finally {
      ended = true;
      clearInterval(timer);
    }
  }
}
