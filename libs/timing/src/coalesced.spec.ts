import { Coalesced } from './coalesced';

/** A job whose runs the test lets finish one at a time. */
function heldJob(options: { pauseMs?: number } = {}) {
  const runs: { finish: () => void; fail: (e: Error) => void }[] = [];
  const run = () => new Promise<void>((finish, fail) => runs.push({ finish, fail }));
  const errors: unknown[] = [];
  const job = new Coalesced(run, (e) => errors.push(e), options);
  const tick = () => new Promise((r) => setImmediate(r));
  return { runs, errors, job, tick };
}

describe('Coalesced: one loop runs a job many callers ask for', () => {
  it('given one call, then the job runs once and the promise settles after it', async () => {
    const { runs, job, tick } = heldJob();
    let settled = false;
    void job.request().then(() => (settled = true));
    await tick();
    expect(runs).toHaveLength(1);
    expect(settled).toBe(false);
    runs[0]!.finish();
    await tick();
    expect(settled).toBe(true);
    expect(runs).toHaveLength(1);
  });

  it('given calls at once, then they share one run', async () => {
    const { runs, job, tick } = heldJob();
    const all = Promise.all([job.request(), job.request(), job.request()]);
    await tick();
    expect(runs).toHaveLength(1);
    runs[0]!.finish();
    await all;
    expect(runs).toHaveLength(1);
  });

  it('given calls during a run, then they share one more run after it, and none settles on the run that began before it', async () => {
    const { runs, job, tick } = heldJob();
    const first = job.request();
    await tick();
    let laterSettled = false;
    const later = [job.request(), job.request(), job.request()];
    void Promise.all(later).then(() => (laterSettled = true));
    runs[0]!.finish();
    await tick();
    expect(runs).toHaveLength(2); // the three calls made one more run, not three
    expect(laterSettled).toBe(false);
    runs[1]!.finish();
    await Promise.all([first, ...later]);
    expect(runs).toHaveLength(2);
  });

  it('given a run that fails, then onError has it, the promise resolves, and the next call runs again', async () => {
    const { runs, errors, job, tick } = heldJob();
    const failing = job.request();
    await tick();
    void job.request(); // asked for during the failing run: the failure ends the loop all the same
    runs[0]!.fail(new Error('database away'));
    await expect(failing).resolves.toBeUndefined();
    expect(errors).toEqual([new Error('database away')]);
    expect(runs).toHaveLength(1);
    const next = job.request();
    await tick();
    expect(runs).toHaveLength(2);
    runs[1]!.finish();
    await next;
  });

  it('given stop, then the run under way finishes, no other begins, and calls after it settle without a run', async () => {
    const { runs, job, tick } = heldJob();
    const first = job.request();
    await tick();
    void job.request();
    job.stop();
    runs[0]!.finish();
    await first;
    await job.request();
    expect(runs).toHaveLength(1);
  });

  it('given a job that answers at once, then a burst of calls made one after another each sees a run that began after it', async () => {
    let runs = 0;
    const job = new Coalesced(async () => void runs++, () => undefined);
    for (let i = 1; i <= 3; i++) {
      await job.request();
      expect(runs).toBe(i);
    }
  });

  describe('with a pause between runs (the clock held by the test)', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());
    /** Lets the loop's promises settle without moving the clock. */
    const settle = async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };

    it('given one call, then the first run does not wait', async () => {
      const { runs, job } = heldJob({ pauseMs: 10 });
      void job.request();
      await settle();
      expect(runs).toHaveLength(1);
    });

    /** A job with a 10 ms pause whose first run has finished while another call waited: the loop is pausing. */
    async function pausing() {
      const held = heldJob({ pauseMs: 10 });
      const first = held.job.request();
      await settle();
      void held.job.request();
      held.runs[0]!.finish();
      await settle();
      return { ...held, first };
    }

    it('given calls during a run, then the next run begins only after the pause, and calls within the pause share it', async () => {
      const { runs, job, first } = await pausing();
      expect(runs).toHaveLength(1);
      await jest.advanceTimersByTimeAsync(9);
      const duringPause = job.request();
      expect(runs).toHaveLength(1);
      await jest.advanceTimersByTimeAsync(1);
      expect(runs).toHaveLength(2); // one run for the call before the pause and the one within it
      runs[1]!.finish();
      await Promise.all([first, duringPause]);
      expect(runs).toHaveLength(2);
    });

    it('given stop during the pause, then no run begins after it', async () => {
      const { runs, job, first } = await pausing();
      job.stop();
      await jest.advanceTimersByTimeAsync(10);
      expect(runs).toHaveLength(1);
      await first;
    });
  });
});
