import { FreshReads } from './fresh-reads';

const turn = () => new Promise<void>((r) => setImmediate(r));

/** A read per call that stays in flight until settled by hand, numbered in the order they started. */
function reads() {
  const started: { key: string; settle: (v: string) => void; fail: (e: Error) => void }[] = [];
  const read = (key: string) =>
    new Promise<string>((settle, fail) => {
      const n = started.length + 1;
      started.push({ key, settle: () => settle(`${key}#${n}`), fail });
    });
  return { started, read };
}

describe('FreshReads', () => {
  it('a lone caller gets a read of its own, and the next caller another', async () => {
    const r = reads();
    const fresh = new FreshReads(r.read);
    const a = fresh.get('c1');
    await turn();
    r.started[0]!.settle('');
    await expect(a).resolves.toBe('c1#1');
    const b = fresh.get('c1');
    await turn();
    expect(r.started).toHaveLength(2);
    r.started[1]!.settle('');
    await expect(b).resolves.toBe('c1#2');
    expect(r.started).toHaveLength(2);
  });

  it('callers that arrive while a read is in flight share the next one, which starts when it settles', async () => {
    const r = reads();
    const fresh = new FreshReads(r.read);
    const first = fresh.get('c1');
    await turn();
    const late = [fresh.get('c1'), fresh.get('c1'), fresh.get('c1')];
    await turn();
    // never the read in flight: it started before they asked
    expect(r.started).toHaveLength(1);
    r.started[0]!.settle('');
    await expect(first).resolves.toBe('c1#1');
    await turn();
    expect(r.started).toHaveLength(2);
    // one arriving now waits for the second read to settle and gets the third
    const later = fresh.get('c1');
    r.started[1]!.settle('');
    await expect(Promise.all(late)).resolves.toEqual(['c1#2', 'c1#2', 'c1#2']);
    await turn();
    expect(r.started).toHaveLength(3);
    r.started[2]!.settle('');
    await expect(later).resolves.toBe('c1#3');
    expect(r.started).toHaveLength(3);
  });

  it('keeps keys apart: a read of one cluster is never shared with a caller of another', async () => {
    const r = reads();
    const fresh = new FreshReads(r.read);
    const a = fresh.get('c1');
    const b = fresh.get('c2');
    await turn();
    expect(r.started.map((s) => s.key)).toEqual(['c1', 'c2']);
    r.started[1]!.settle('');
    r.started[0]!.settle('');
    await expect(Promise.all([a, b])).resolves.toEqual(['c1#1', 'c2#2']);
  });

  it('a failed read fails for those who shared it, and the callers after them get a new read', async () => {
    const r = reads();
    const fresh = new FreshReads(r.read);
    const first = fresh.get('c1');
    await turn();
    const shared = [fresh.get('c1'), fresh.get('c1')];
    r.started[0]!.fail(new Error('inventory unavailable'));
    await expect(first).rejects.toThrow('inventory unavailable');
    await turn();
    r.started[1]!.fail(new Error('inventory unavailable again'));
    for (const s of shared) await expect(s).rejects.toThrow('inventory unavailable again');
    const after = fresh.get('c1');
    await turn();
    r.started[2]!.settle('');
    await expect(after).resolves.toBe('c1#3');
  });

  it('a read that throws before it returns a promise fails its callers and leaves no key behind', async () => {
    let calls = 0;
    const fresh = new FreshReads<string, string>((key) => {
      if (++calls === 1) throw new Error('bad request');
      return Promise.resolve(`${key} ok`);
    });
    await expect(fresh.get('c1')).rejects.toThrow('bad request');
    await expect(fresh.get('c1')).resolves.toBe('c1 ok');
  });

  describe('with startedAfter (fresh enough)', () => {
    it('shares the read in flight, or the last answered one, when it started at or after that moment', async () => {
      const r = reads();
      let clock = 1_000;
      const fresh = new FreshReads(r.read, () => clock);
      const first = fresh.get('c1');
      await turn();
      clock = 1_050;
      const inFlight = fresh.get('c1', 1_000); // the read in flight started at 1,000: fresh enough
      r.started[0]!.settle('');
      await expect(Promise.all([first, inFlight])).resolves.toEqual(['c1#1', 'c1#1']);
      clock = 1_900;
      await expect(fresh.get('c1', 1_000)).resolves.toBe('c1#1'); // answered, started at 1,000
      expect(r.started).toHaveLength(1);
    });

    it('never gives a read that started before that moment: a new read starts', async () => {
      const r = reads();
      let clock = 1_000;
      const fresh = new FreshReads(r.read, () => clock);
      const first = fresh.get('c1');
      await turn();
      r.started[0]!.settle('');
      await expect(first).resolves.toBe('c1#1');
      clock = 1_200;
      const later = fresh.get('c1', 1_001);
      await turn();
      expect(r.started).toHaveLength(2);
      r.started[1]!.settle('');
      await expect(later).resolves.toBe('c1#2');
      // and a caller without startedAfter never gets an answered read
      const plain = fresh.get('c1');
      await turn();
      expect(r.started).toHaveLength(3);
      r.started[2]!.settle('');
      await expect(plain).resolves.toBe('c1#3');
    });

    it('a read in flight that started too early is not shared: the caller gets the next one', async () => {
      const r = reads();
      let clock = 1_000;
      const fresh = new FreshReads(r.read, () => clock);
      const first = fresh.get('c1');
      await turn();
      clock = 1_100;
      const late = fresh.get('c1', 1_100);
      r.started[0]!.settle('');
      await expect(first).resolves.toBe('c1#1');
      await turn();
      expect(r.started).toHaveLength(2);
      r.started[1]!.settle('');
      await expect(late).resolves.toBe('c1#2');
    });

    it('keeps no failed read: the next caller reads again', async () => {
      const r = reads();
      const clock = 1_000;
      const fresh = new FreshReads(r.read, () => clock);
      const first = fresh.get('c1');
      await turn();
      r.started[0]!.fail(new Error('inventory unavailable'));
      await expect(first).rejects.toThrow('inventory unavailable');
      const again = fresh.get('c1', 1_000);
      await turn();
      expect(r.started).toHaveLength(2);
      r.started[1]!.settle('');
      await expect(again).resolves.toBe('c1#2');
    });
  });
});
