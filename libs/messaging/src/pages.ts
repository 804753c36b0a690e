import type { ReplyOf, RequestContract, RequestOf } from '@flexmig/contracts';
import type { NatsBus } from './nats-bus';

/**
 * Items per page when a service collects a whole NATS list: well under NATS's 1 MiB message limit for any
 * list's items (a VM of a host-passthrough baseline carries its feature list, up to about 2 KiB; a listed
 * host, whose list its page carries once, about 0.7 KiB).
 */
export const COLLECT_PAGE_LIMIT = 200;

/**
 * Every item of a paged NATS list (a request with `limit`/`cursor`, a reply with `nextCursor`), page after
 * page: for the callers that need the whole set (placement needs every host of the cluster). `limit`: the
 * page size, COLLECT_PAGE_LIMIT unless the list's items are small enough for more.
 */
export async function requestAllPages<C extends RequestContract, T>(
  bus: Pick<NatsBus, 'request'>,
  contract: C,
  request: Omit<RequestOf<C>, 'limit' | 'cursor'>,
  items: (reply: ReplyOf<C>) => T[],
  opts: { timeoutMs?: number; limit?: number } = {},
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  const { limit = COLLECT_PAGE_LIMIT, ...requestOpts } = opts;
  do {
    const reply = await bus.request(contract, { ...request, limit, ...(cursor ? { cursor } : {}) } as RequestOf<C>, requestOpts);
    all.push(...items(reply));
    cursor = (reply as { nextCursor?: string | null }).nextCursor ?? undefined;
  } while (cursor);
  return all;
}
