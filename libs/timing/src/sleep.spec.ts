import { sleep } from './sleep';

describe('sleep', () => {
  it('resolves after the delay', async () => {
    const t0 = Date.now();
    await sleep(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(25);
  });

  it('resolves at once when the signal aborts, and when it was aborted already', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const waiting = sleep(60_000, ac.signal);
    setTimeout(() => ac.abort(), 10);
    await waiting;
    await sleep(60_000, ac.signal);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('treats 0 and negative delays as "yield once"', async () => {
    await expect(sleep(0)).resolves.toBeUndefined();
    await expect(sleep(-5)).resolves.toBeUndefined();
  });
});
