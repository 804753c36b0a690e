import { StopWaiting, waitFor } from './infra';

describe('waitFor', () => {
  it('asks again after an error, and returns the first value', async () => {
    let asked = 0;
    const v = await waitFor('the third answer', () => {
      asked++;
      if (asked < 3) throw new Error(`not yet (${asked})`);
      return 'ok';
    }, { timeoutMs: 5_000, intervalMs: 1 });
    expect(v).toBe('ok');
    expect(asked).toBe(3);
  });

  it('ends at once on StopWaiting (asked once, not until the timeout), with its message', async () => {
    let asked = 0;
    await expect(
      waitFor('something that cannot happen any more', () => {
        asked++;
        throw new StopWaiting('it ended first');
      }, { timeoutMs: 60_000, intervalMs: 1 }),
    ).rejects.toThrow(new StopWaiting('it ended first'));
    expect(asked).toBe(1);
  });

  it('names what it waited for and the last error when the time is up', async () => {
    await expect(waitFor('a value', () => Promise.reject(new Error('down')), { timeoutMs: 20, intervalMs: 5 })).rejects.toThrow('timed out after 20 ms waiting for a value: down');
  });
});
