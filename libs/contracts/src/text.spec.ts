import { firstOf } from './text';

describe('firstOf: a long list on one line', () => {
  const ids = Array.from({ length: 30 }, (_, i) => `h${i}`);

  it('names every item when they fit', () => {
    expect(firstOf(['a', 'b'])).toBe('a, b');
    expect(firstOf(ids.slice(0, 10))).toBe(ids.slice(0, 10).join(', '));
  });

  it('names the first ones and counts the rest', () => {
    expect(firstOf(ids)).toBe(`${ids.slice(0, 10).join(', ')} and 20 more`);
    expect(firstOf(ids, ids.length, 3)).toBe('h0, h1, h2 and 27 more');
  });

  it('adds up to the total an answer counts when it names fewer items than that', () => {
    // a report that counts 25 hosts and names its first 5: the line says 5 ids and 20 more, not 15 more
    expect(firstOf(ids.slice(0, 5), 25)).toBe('h0, h1, h2, h3, h4 and 20 more');
    expect(firstOf(ids.slice(0, 12), 25)).toBe(`${ids.slice(0, 10).join(', ')} and 15 more`);
  });

  it('an empty list: nothing, or only the count', () => {
    expect(firstOf([])).toBe('');
    expect(firstOf([], 7)).toBe('7');
  });
});
