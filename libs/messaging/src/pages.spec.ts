import { z } from 'zod';
import { defineRequest, PageQuerySchema } from '@flexmig/contracts';
import { COLLECT_PAGE_LIMIT, requestAllPages } from './pages';

const ListThings = defineRequest({
  subject: 'test.things.list',
  description: 'a paged list',
  request: z.object({ owner: z.string().optional(), ...PageQuerySchema.shape }),
  reply: z.object({ things: z.array(z.number()), nextCursor: z.string().nullable() }),
});

describe('requestAllPages', () => {
  it('follows nextCursor to the last page, asking pages the size of COLLECT_PAGE_LIMIT and keeping the filters', async () => {
    const asked: unknown[] = [];
    const pages: Record<string, { things: number[]; nextCursor: string | null }> = {
      start: { things: [1, 2], nextCursor: 'c1' },
      c1: { things: [3, 4], nextCursor: 'c2' },
      c2: { things: [5], nextCursor: null },
    };
    const bus = {
      request: async (_c: unknown, req: { cursor?: string }) => {
        asked.push(req);
        return pages[req.cursor ?? 'start'];
      },
    };
    const all = await requestAllPages(bus as never, ListThings, { owner: 'x' }, (r) => r.things);
    expect(all).toEqual([1, 2, 3, 4, 5]);
    expect(asked).toEqual([
      { owner: 'x', limit: COLLECT_PAGE_LIMIT },
      { owner: 'x', limit: COLLECT_PAGE_LIMIT, cursor: 'c1' },
      { owner: 'x', limit: COLLECT_PAGE_LIMIT, cursor: 'c2' },
    ]);
  });
});
