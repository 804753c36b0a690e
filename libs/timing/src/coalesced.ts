import { sleep } from './sleep';

/**
 * A job many callers ask for, run by one loop at a time: a call while a run is under way asks for one more
 * run after it, however many calls there are, so a burst costs one or two runs instead of one each (a
 * dispatch of the queue on every freed slot, a look at the running evacuations on every migration's end).
 * The promise a call gets settles once a run that began after the call has finished: what the caller asked
 * for has been looked at.
 *
 * A run that fails is handed to `onError` and ends the loop; the promise resolves all the same (the caller's
 * fallback, a timer, asks again), and the next call starts a new loop. After `stop()` no run begins; one under
 * way finishes.
 *
 * `pauseMs` waits that long before every run after the first: under load, calls that arrive within the pause
 * share its run too (the outbox relay's batches). The first run never waits.
 */
export class Coalesced {
  private loop?: Promise<void>;
  private again = false;
  private stopped = false;

  constructor(
    private readonly run: () => Promise<void>,
    private readonly onError: (e: unknown) => void,
    private readonly options: { pauseMs?: number } = {},
  ) {}

  /** Runs the job, or once more after the run under way. */
  request(): Promise<void> {
    if (this.stopped) return this.loop ?? Promise.resolve();
    this.again = true;
    this.loop ??= this.drain();
    return this.loop;
  }

  /** No run begins after this. */
  stop(): void {
    this.stopped = true;
  }

  private async drain(): Promise<void> {
    // the first run begins after the caller's turn, so `loop` is set before anything below can clear it
    await Promise.resolve();
    try {
      for (let first = true; this.again && !this.stopped; first = false) {
        if (!first && this.options.pauseMs) {
          await sleep(this.options.pauseMs);
          if (this.stopped) break;
        }
        this.again = false;
        await this.run();
      }
    } catch (e) {
      this.onError(e);
    } finally {
      this.loop = undefined;
    }
  }
}
