import { Gate } from './gate';

const turn = () => new Promise<void>((r) => setImmediate(r));

/** A task that stays running until released, and records when it ran. */
function task(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return {
    release: () => release(),
    fn: async () => {
      log.push(`start ${name}`);
      await done;
      log.push(`end ${name}`);
      return name;
    },
  };
}

describe('Gate', () => {
  it('lets at most `limit` run at once, and the rest in the order they came', async () => {
    const gate = new Gate(2);
    const log: string[] = [];
    const tasks = ['a', 'b', 'c', 'd'].map((n) => task(log, n));
    const results = tasks.map((t) => gate.run(t.fn));
    await turn();
    expect(log).toEqual(['start a', 'start b']);
    expect(gate.queued).toBe(2);
    tasks[1]!.release();
    await turn();
    expect(log).toEqual(['start a', 'start b', 'end b', 'start c']);
    tasks[0]!.release();
    tasks[2]!.release();
    tasks[3]!.release();
    await expect(Promise.all(results)).resolves.toEqual(['a', 'b', 'c', 'd']);
    expect(log.filter((l) => l.startsWith('start'))).toEqual(['start a', 'start b', 'start c', 'start d']);
    expect(gate.queued).toBe(0);
  });

  it('frees the slot of a call that throws, and passes the error on', async () => {
    const gate = new Gate(1);
    await expect(gate.run(async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    await expect(gate.run(async () => 'next')).resolves.toBe('next');
  });

  it('a newcomer does not overtake those already waiting', async () => {
    const gate = new Gate(1);
    const log: string[] = [];
    const first = task(log, 'first');
    const second = task(log, 'second');
    const p1 = gate.run(first.fn);
    const p2 = gate.run(second.fn);
    await turn();
    first.release();
    const p3 = gate.run(async () => {
      log.push('late');
      return 'late';
    });
    await turn();
    expect(log).toEqual(['start first', 'end first', 'start second']);
    second.release();
    await Promise.all([p1, p2, p3]);
    expect(log).toEqual(['start first', 'end first', 'start second', 'end second', 'late']);
  });

  it('refuses a limit below 1', () => {
    expect(() => new Gate(0)).toThrow(RangeError);
    expect(() => new Gate(1.5)).toThrow(RangeError);
  });
});
