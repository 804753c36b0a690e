import { Repeats } from './repeats';

describe('Repeats: a recurring failure said once in a while', () => {
  let t: number;
  let said: string[];
  let repeats: Repeats;
  beforeEach(() => {
    t = 1_000_000;
    said = [];
    const say = (line: string) => void said.push(line);
    repeats = new Repeats({ warn: say, log: (line) => say(`[log] ${line}`) }, 30_000, () => t);
  });

  it('given a failure on every turn of a loop, then it is said the first time, then once per window with how often it came', () => {
    for (let i = 0; i < 61; i++, t += 1_000) repeats.failed('sweep failed: connection refused');
    expect(said).toEqual([
      'sweep failed: connection refused',
      'sweep failed: connection refused (29 more time(s) in the last 30 s)',
      'sweep failed: connection refused (29 more time(s) in the last 30 s)',
    ]);
  });

  it('given another failure, then it is said at once, each kept to its own window', () => {
    repeats.failed('a');
    t += 1_000;
    repeats.failed('b');
    repeats.failed('a');
    expect(said).toEqual(['a', 'b']);
  });

  it('given a key, then failures whose text differs (an id, a time) count as one', () => {
    repeats.failed('beat of h1 not written', 'beat');
    repeats.failed('beat of h2 not written', 'beat');
    t += 30_000;
    repeats.failed('beat of h3 not written', 'beat');
    expect(said).toEqual(['beat of h1 not written', 'beat of h3 not written (1 more time(s) in the last 30 s)']);
  });

  it('given the loop working again, then that is said once, and the next failure at once', () => {
    repeats.recovered('the sweep');
    expect(said).toEqual([]);
    repeats.failed('x');
    repeats.failed('x');
    repeats.recovered('the sweep');
    repeats.recovered('the sweep');
    t += 1_000;
    repeats.failed('x');
    expect(said).toEqual(['x', '[log] the sweep works again, after 2 failure(s)', 'x']);
  });
});
