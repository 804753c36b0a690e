import type { Verdict } from './cpu';
import { VERDICT_MAX_AGE_MS, VerdictCache, type VerdictQuestion } from './verdict-cache';

const yes = { compatible: true } as unknown as Verdict;
const question = (features: string[], baseline = 'Haswell', vmFeatures?: string[]): VerdictQuestion => ({
  baseline,
  target: { vendor: 'Intel', features },
  ...(vmFeatures ? { vmFeatures } : {}),
});

describe('VerdictCache', () => {
  it('given 1,000 hosts of two CPU kinds asked at once, then cpu-compat is asked twice and every host gets its answer', async () => {
    const ask = jest.fn(async (q: VerdictQuestion) => ({ ...yes, for: q.target.features.join() }) as unknown as Verdict);
    const cache = new VerdictCache(ask);
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => cache.verdict(question(i % 2 ? ['avx2', 'sse4.2'] : ['sse4.2']))));
    expect(ask).toHaveBeenCalledTimes(2);
    expect(answers.filter((a) => (a as unknown as { for: string }).for === 'avx2,sse4.2')).toHaveLength(500);
  });

  it('given the same features in another order, then it is the same question; another baseline or VM feature set is another', async () => {
    const ask = jest.fn(async () => yes);
    const cache = new VerdictCache(ask);
    await cache.verdict(question(['a', 'b']));
    await cache.verdict(question(['b', 'a']));
    expect(ask).toHaveBeenCalledTimes(1);
    await cache.verdict(question(['a', 'b'], 'Skylake-Server'));
    await cache.verdict(question(['a', 'b'], 'host-passthrough', ['a']));
    await cache.verdict(question(['a', 'b'], 'host-passthrough', ['a', 'b']));
    expect(ask).toHaveBeenCalledTimes(4);
  });

  it('given keys by feature-set digest, then one question per set, baseline and VM feature set, never equal to a keyOf key', async () => {
    const ask = jest.fn(async () => yes);
    const cache = new VerdictCache(ask);
    const haswell = VerdictCache.keyBySet('Haswell', null);
    await Promise.all(Array.from({ length: 100 }, (_, i) => cache.verdict(question(['a', 'b']), haswell('Intel', i % 2 ? 'd1' : 'd2'))));
    expect(ask).toHaveBeenCalledTimes(2);
    expect(haswell('AMD', 'd1')).not.toBe(haswell('Intel', 'd1'));
    expect(VerdictCache.keyBySet('Skylake-Server', null)('Intel', 'd1')).not.toBe(haswell('Intel', 'd1'));
    const passthrough = (vmFeatures: string[]) => VerdictCache.keyBySet('host-passthrough', vmFeatures)('Intel', 'd1');
    expect(passthrough(['b', 'a'])).toBe(passthrough(['a', 'b']));
    expect(passthrough(['a'])).not.toBe(passthrough(['a', 'b']));
    expect(haswell('Intel', 'd1')).not.toBe(VerdictCache.keyOf(question(['a', 'b'])));
  });

  it('given a failed request, then the error reaches the caller and the next one asks again', async () => {
    const ask = jest.fn().mockRejectedValueOnce(new Error('cpu-compat unreachable')).mockResolvedValue(yes);
    const cache = new VerdictCache(ask);
    await expect(cache.verdict(question(['a']))).rejects.toThrow('cpu-compat unreachable');
    await expect(cache.verdict(question(['a']))).resolves.toBe(yes);
    expect(ask).toHaveBeenCalledTimes(2);
  });

  it('given more questions than it keeps, then the least recently used is forgotten first', async () => {
    const ask = jest.fn(async () => yes);
    const cache = new VerdictCache(ask, { maxEntries: 2 });
    await cache.verdict(question(['a']));
    await cache.verdict(question(['b']));
    await cache.verdict(question(['a'])); // a is now the newest
    await cache.verdict(question(['c'])); // b goes
    expect(cache.size).toBe(2);
    ask.mockClear();
    await cache.verdict(question(['a']));
    expect(ask).not.toHaveBeenCalled();
    await cache.verdict(question(['b']));
    expect(ask).toHaveBeenCalledTimes(1);
  });

  it('given an answer older than its maximum age, then the question is asked again, once for every caller, and kept anew', async () => {
    let now = 1_000_000;
    const ask = jest.fn(async () => yes);
    const cache = new VerdictCache(ask, { now: () => now });
    await cache.verdict(question(['a']));
    now += VERDICT_MAX_AGE_MS;
    await cache.verdict(question(['a'])); // as old as it may be: kept
    expect(ask).toHaveBeenCalledTimes(1);
    now += 1;
    await Promise.all([cache.verdict(question(['a'])), cache.verdict(question(['a']))]);
    expect(ask).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(1);
    now += VERDICT_MAX_AGE_MS;
    await cache.verdict(question(['a']));
    expect(ask).toHaveBeenCalledTimes(2);
  });

  it('given a question answered, being asked, failed or too old, then known gives the kept answer only for the first', async () => {
    let now = 0;
    let answer!: (v: Verdict) => void;
    const ask = jest
      .fn<Promise<Verdict>, [VerdictQuestion]>()
      .mockResolvedValueOnce(yes)
      .mockReturnValueOnce(new Promise<Verdict>((resolve) => (answer = resolve)))
      .mockRejectedValueOnce(new Error('cpu-compat unreachable'));
    const cache = new VerdictCache(ask, { now: () => now });
    expect(cache.known(question(['a']))).toBeUndefined();
    await cache.verdict(question(['a']));
    expect(cache.known(question(['a']))).toBe(yes);
    const pending = cache.verdict(question(['b']));
    expect(cache.known(question(['b']))).toBeUndefined();
    answer(yes);
    await pending;
    expect(cache.known(question(['b']))).toBe(yes);
    await expect(cache.verdict(question(['c']))).rejects.toThrow('cpu-compat unreachable');
    expect(cache.known(question(['c']))).toBeUndefined();
    now += VERDICT_MAX_AGE_MS + 1;
    expect(cache.known(question(['a']))).toBeUndefined();
    expect(ask).toHaveBeenCalledTimes(3);
  });
});
