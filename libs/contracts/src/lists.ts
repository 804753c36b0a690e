import { z } from 'zod';

/** Items per page when a list request does not say, and the most one may ask for. */
export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;

/** An opaque page cursor, as a list answered it in `nextCursor`. */
export const PageCursorSchema = z.string().min(1).max(200).regex(/^[A-Za-z0-9_-]+$/, 'a cursor is the nextCursor of a previous page, as it was given');

/** The paging part of a list query (`?limit=&cursor=`), beside the list's own filters. */
export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).default(DEFAULT_PAGE_LIMIT),
  cursor: PageCursorSchema.optional(),
});
export type PageQuery = z.infer<typeof PageQuerySchema>;

/**
 * What every HTTP list route answers: `{items: [...], nextCursor}` (the OpenAPI documents name it
 * `<Item>List`). `nextCursor` is null on the last page; otherwise pass it as `cursor` for the next one.
 */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });
export type Page<T> = { items: T[]; nextCursor: string | null };
