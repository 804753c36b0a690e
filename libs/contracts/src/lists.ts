import { z } from 'zod';

/** What every HTTP list route answers: `{items: [...]}` (the OpenAPI documents name it `<Item>List`). */
export const listOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });
