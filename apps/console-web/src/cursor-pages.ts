/**
 * Where a table that pages on the server stands: the cursor of each page from the first to the one shown
 * (the first page has none), so that "previous" goes back without the server paging backwards. Pure: the
 * table keeps it in its state.
 */
export interface CursorPages {
  readonly cursors: readonly (string | undefined)[];
  /** The page shown, from 0. */
  readonly index: number;
}

export const firstPage: CursorPages = { cursors: [undefined], index: 0 };

/** The cursor to ask the page shown with. */
export const cursorOf = (at: CursorPages): string | undefined => at.cursors[at.index];

/** The page after the one shown, whose cursor the shown page's answer gave. */
export const nextPage = (at: CursorPages, nextCursor: string): CursorPages => ({ cursors: [...at.cursors.slice(0, at.index + 1), nextCursor], index: at.index + 1 });

/** The page before the one shown (the first stays the first). */
export const previousPage = (at: CursorPages): CursorPages => (at.index === 0 ? at : { cursors: at.cursors.slice(0, at.index), index: at.index - 1 });

/** The positions, from 1, of the first and last item of the page shown, `shown` items of `perPage` a page. */
export const rangeOf = (at: CursorPages, perPage: number, shown: number): { first: number; last: number } => ({ first: at.index * perPage + (shown ? 1 : 0), last: at.index * perPage + shown });
