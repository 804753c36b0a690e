// The console's one client of the API: the same origin (FLEXMIG_URL), the token of the login page as bearer.
const TOKEN_KEY = 'flexmig.token';

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer other than 2xx, in the services' error shape `{code, message, details}` when they sent it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Called on 401: the page goes back to the login with the reason. */
let onUnauthenticated: (reason: string) => void = () => undefined;
export const whenUnauthenticated = (f: (reason: string) => void) => (onUnauthenticated = f);

export async function request<T>(method: string, path: string, body?: unknown, init?: { signal?: AbortSignal }): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: init?.signal });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if (res.ok) return parsed as T;
  const e = (parsed ?? {}) as { code?: string; message?: string; details?: unknown };
  const message = typeof e.message === 'string' ? e.message : `${method} ${path} answered ${res.status}`;
  if (res.status === 401) onUnauthenticated(`${message} (401 ${e.code ?? 'UNAUTHENTICATED'})`);
  throw new ApiError(res.status, e.code ?? String(res.status), message, e.details);
}

export const get = <T>(path: string, init?: { signal?: AbortSignal }) => request<T>('GET', path, undefined, init);
export const post = <T>(path: string, body: unknown) => request<T>('POST', path, body);
export const put = <T>(path: string, body: unknown) => request<T>('PUT', path, body);

/** Largest page asked for (the API's lists answer 1,000 at most). */
const PAGE = 500;

/** The path of one page of a list: its filters (those given), `limit`, and the `cursor` of the page. */
function pageUrl(path: string, query: Record<string, string | undefined>, limit: number, cursor?: string): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  q.set('limit', String(limit));
  if (cursor) q.set('cursor', cursor);
  return `${path}?${q}`;
}

/**
 * Each page of a list as the server answered it, following `nextCursor` (`limit`/`cursor`); a server that
 * sends everything in one `{items}` (or a bare array) is one page.
 */
async function* pages<P>(path: string, query: Record<string, string | undefined>): AsyncGenerator<P> {
  let cursor: string | undefined;
  do {
    const page = await get<P>(pageUrl(path, query, PAGE, cursor));
    yield page;
    cursor = Array.isArray(page) ? undefined : ((page as { nextCursor?: string | null }).nextCursor ?? undefined);
  } while (cursor);
}

/** One page of a list, as the server pages it. */
export interface OnePage<T> {
  items: T[];
  /** The next page's cursor; null on the last page. */
  nextCursor: string | null;
}

/**
 * One page of a list (`limit` items from `cursor`, the first page without one), for the lists that grow
 * without bound (migrations, evacuations), which a page shows a page at a time instead of reading whole. A
 * server that sends everything at once (a bare array, or `{items}` without `nextCursor`) is one last page.
 */
export async function onePage<T>(path: string, query: Record<string, string | undefined>, page: { limit: number; cursor?: string }): Promise<OnePage<T>> {
  const answer = await get<{ items: T[]; nextCursor?: string | null } | T[]>(pageUrl(path, query, page.limit, page.cursor));
  if (Array.isArray(answer)) return { items: answer, nextCursor: null };
  return { items: answer.items, nextCursor: answer.nextCursor ?? null };
}

/** Every item of a list. Stops at `max` items (the tables page and search on the client). */
export async function list<T>(path: string, query: Record<string, string | undefined> = {}, max = 20_000): Promise<T[]> {
  const items: T[] = [];
  for await (const page of pages<{ items: T[] } | T[]>(path, query)) {
    if (Array.isArray(page)) return page;
    items.push(...page.items);
    if (items.length >= max) break;
  }
  return items;
}

/**
 * One page of a paged report (a summary beside a page of its items: the reconciliation's), as the server
 * answers it: the summary with `limit` items from `cursor` and the next page's cursor.
 */
export async function reportPage<R extends OnePage<unknown>>(path: string, query: Record<string, string | undefined>, page: { limit: number; cursor?: string }): Promise<R> {
  return get<R>(pageUrl(path, query, page.limit, page.cursor));
}

export interface SseMessage {
  id?: string;
  event: string;
  data: unknown;
}

/**
 * A live stream (Server-Sent Events) read with fetch, because EventSource cannot send the bearer token.
 * Reconnects after a drop with `Last-Event-ID` (the events after the last one seen; progress samples have
 * no id and are not replayed), until `close()`.
 */
export function openStream(path: string, onMessage: (m: SseMessage) => void, onState?: (s: 'open' | 'reconnecting' | 'failed', why?: string) => void): { close(): void } {
  const abort = new AbortController();
  let lastEventId: string | undefined;
  const run = async () => {
    let delay = 500;
    while (!abort.signal.aborted) {
      try {
        const headers: Record<string, string> = { accept: 'text/event-stream' };
        const t = token.get();
        if (t) headers.authorization = `Bearer ${t}`;
        if (lastEventId) headers['last-event-id'] = lastEventId;
        const res = await fetch(path, { headers, signal: abort.signal });
        if (res.status === 401) {
          onUnauthenticated('the live stream refused the token (401)');
          return;
        }
        if (!res.ok || !res.body) {
          const body = (await res.json().catch(() => ({}))) as { message?: string };
          // 404 and 400 will not get better by retrying
          if (res.status === 404 || res.status === 400) return onState?.('failed', body.message ?? `${res.status}`);
          throw new Error(body.message ?? `${res.status}`);
        }
        onState?.('open');
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + (buffer[end] === '\r' ? 4 : 2));
            const m = parseBlock(block);
            if (!m) continue;
            if (m.id !== undefined) lastEventId = m.id;
            onMessage(m);
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        onState?.('reconnecting', e instanceof Error ? e.message : String(e));
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  void run();
  return { close: () => abort.abort() };
}

function parseBlock(block: string): SseMessage | undefined {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const [field, value] = i < 0 ? [line, ''] : [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')];
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return undefined;
  const text = data.join('\n');
  try {
    return { id, event, data: JSON.parse(text) };
  } catch {
    return { id, event, data: text };
  }
}
