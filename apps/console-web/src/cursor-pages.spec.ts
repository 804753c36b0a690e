import { cursorOf, firstPage, nextPage, previousPage, rangeOf } from './cursor-pages';

describe('CursorPages: where a table paged on the server stands', () => {
  it('goes forward with each page\'s nextCursor and back to the cursor each page was read with', () => {
    const second = nextPage(firstPage, 'c1');
    const third = nextPage(second, 'c2');
    expect([cursorOf(firstPage), cursorOf(second), cursorOf(third)]).toEqual([undefined, 'c1', 'c2']);
    expect(rangeOf(third, 20, 7)).toEqual({ first: 41, last: 47 });
    const back = previousPage(third);
    expect(cursorOf(back)).toBe('c1');
    expect(rangeOf(back, 20, 20)).toEqual({ first: 21, last: 40 });
    expect(cursorOf(previousPage(back))).toBeUndefined();
    expect(previousPage(firstPage)).toBe(firstPage);
  });

  it('forgets the pages after the one shown when it goes forward from an earlier page (the list may have changed)', () => {
    const third = nextPage(nextPage(firstPage, 'c1'), 'c2');
    const again = nextPage(previousPage(third), 'c2-now');
    expect(again.cursors).toEqual([undefined, 'c1', 'c2-now']);
    expect(cursorOf(again)).toBe('c2-now');
  });

  it('says nothing is shown on an empty page', () => {
    expect(rangeOf(firstPage, 20, 0)).toEqual({ first: 0, last: 0 });
  });
});
