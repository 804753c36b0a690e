import { type Host, type HostPage, MAX_PAGE_LIMIT, withFeatures } from '@flexmig/contracts';
import { CliError, ExitCode, adviceOfStatus, exitCodeOfStatus } from './exit-codes';
import { SseParser, type SseMessage } from './sse';

/** Refusals have this shape (libs/contracts ErrorBody); anything else is shown as text. */
interface ErrorBody {
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
}

export interface ApiOptions {
  url: string;
  token?: string;
  timeoutMs: number;
}

/** The answer of a request the caller wants to look at itself (see `requestRaw`). */
export interface ApiReply<T = unknown> {
  status: number;
  body: T;
}

/** How many pages `list` follows at most: a bound against a server that always answers a cursor. */
const MAX_PAGES = 10_000;

/**
 * The flexmig API behind one URL (the console): bearer token, timeouts, and every failure turned into a
 * CliError with the exit code it means (3 refused, 4 unreachable) and a message that says what failed,
 * why, and what to do.
 */
export class ApiClient {
  constructor(readonly o: ApiOptions) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { accept: 'application/json', ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}), ...extra };
  }

  /** The request, whatever its status; only transport failures throw (exit 4). */
  async requestRaw<T = unknown>(method: string, route: string, body?: unknown): Promise<ApiReply<T>> {
    const what = `${method} ${this.o.url}${route}`;
    let res: Response;
    try {
      res = await fetch(`${this.o.url}${route}`, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      throw unreachable(what, e, this.o.timeoutMs);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw unreachable(what, e, this.o.timeoutMs);
    }
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (a proxy's error page): keep the text for the message
    }
    return { status: res.status, body: parsed as T };
  }

  /** The request's body when it succeeded (2xx); otherwise a CliError: 4xx exit 3, 5xx exit 4. */
  async request<T = unknown>(method: string, route: string, body?: unknown): Promise<T> {
    const r = await this.requestRaw<T>(method, route, body);
    if (r.status >= 200 && r.status < 300) return r.body;
    throw refusal(`${method} ${route}`, r);
  }

  get = <T = unknown>(route: string) => this.request<T>('GET', route);
  post = <T = unknown>(route: string, body: unknown = {}) => this.request<T>('POST', route, body);
  put = <T = unknown>(route: string, body: unknown) => this.request<T>('PUT', route, body);

  /**
   * Every item of a list. Lists answer `{ items, nextCursor? }`: a cursor is followed (`cursor=`) until the
   * server gives none; a server that pages nothing answers everything in `items` at once.
   */
  async list<T = unknown>(route: string, query: Record<string, string | undefined> = {}): Promise<T[]> {
    const items: T[] = [];
    for await (const body of this.pages<{ items?: T[] } | T[]>(route, query)) {
      if (Array.isArray(body)) return body;
      items.push(...(body.items ?? []));
    }
    return items;
  }

  /**
   * The first `max` items of a list in the server's order (newest first for the histories: migrations,
   * evacuations), asked in pages of at most `max` (the API's largest otherwise), and whether more follow: a
   * history grows without bound, and `flexmig migrations` read every migration ever run, again at every
   * refresh of `--watch`.
   */
  async first<T = unknown>(route: string, query: Record<string, string | undefined>, max: number): Promise<{ items: T[]; more: boolean }> {
    const items: T[] = [];
    for await (const body of this.pages<{ items?: T[]; nextCursor?: string | null } | T[]>(route, { ...query, limit: String(Math.min(max, MAX_PAGE_LIMIT)) })) {
      if (Array.isArray(body)) return { items: body.slice(0, max), more: body.length > max };
      items.push(...(body.items ?? []));
      if (items.length >= max) return { items: items.slice(0, max), more: items.length > max || Boolean(body.nextCursor) };
    }
    return { items, more: false };
  }

  /**
   * Every host (of a cluster), each with its CPU feature list again: a page of hosts carries each list once,
   * in `featureSets`, under the digest its hosts name (`GET /api/v1/hosts`).
   */
  async hosts(query: { clusterId?: string } = {}): Promise<Host[]> {
    const hosts: Host[] = [];
    for await (const page of this.pages<HostPage>('/api/v1/hosts', query)) hosts.push(...page.items.map((h) => withFeatures(h, page.featureSets)));
    return hosts;
  }

  /** Each page of a list as the server answered it (a report's summary beside its items, say), following `nextCursor`. */
  async *pages<P>(route: string, query: Record<string, string | undefined> = {}): AsyncGenerator<P> {
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      // the largest page the API gives (a server's default is 100): a list of 10,000 VMs in 10 requests, not 100
      const q = new URLSearchParams(Object.entries({ ...query, limit: query.limit ?? String(MAX_PAGE_LIMIT), cursor }).filter((e): e is [string, string] => e[1] !== undefined));
      const body = await this.get<P>(`${route}${q.size ? `?${q}` : ''}`);
      yield body;
      const paging = (Array.isArray(body) ? {} : (body ?? {})) as { nextCursor?: string | null; cursor?: string | null };
      const next = paging.nextCursor ?? paging.cursor ?? undefined;
      if (!next || next === cursor) return;
      cursor = next;
    }
    throw new CliError(`GET ${route}: the server answered more than ${MAX_PAGES} pages; narrow the list with a filter`, ExitCode.Failed);
  }

  /**
   * A live stream (SSE). Answers undefined when the server has no such stream (404: a URL that is not the
   * console, or an older one) so that the caller can poll instead; other refusals throw.
   */
  async stream(route: string, opts: { lastEventId?: string; signal?: AbortSignal } = {}): Promise<AsyncIterable<SseMessage> | undefined> {
    const what = `GET ${this.o.url}${route}`;
    let res: Response;
    try {
      res = await fetch(`${this.o.url}${route}`, {
        headers: this.headers({ accept: 'text/event-stream', ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}) }),
        signal: opts.signal,
      });
    } catch (e) {
      if (opts.signal?.aborted) return undefined;
      throw unreachable(what, e, this.o.timeoutMs);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status !== 200 || !res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      const text = await res.text().catch(() => '');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // keep the text
      }
      if (res.status === 200) return undefined; // a server that answers JSON here streams nothing: poll
      throw refusal(`GET ${route}`, { status: res.status, body });
    }
    return messages(res.body, opts.signal);
  }
}

async function* messages(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncIterable<SseMessage> {
  const parser = new SseParser();
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const chunk = await reader.read().catch((e: unknown) => {
        if (signal?.aborted) return { done: true as const, value: undefined };
        throw e;
      });
      if (chunk.done) return;
      yield* parser.push(chunk.value);
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

function unreachable(what: string, e: unknown, timeoutMs: number): CliError {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const why =
    err.name === 'TimeoutError' || err.name === 'AbortError'
      ? `no answer within ${timeoutMs} ms`
      : (err.cause?.code ?? err.cause?.message ?? err.message);
  return new CliError(
    `${what} failed: ${why}. Is the console running there? Set FLEXMIG_URL (or --url, or url in the config file) to its address`,
    ExitCode.Unreachable,
  );
}

/** A non-2xx answer as a CliError: what was asked, the API's code and reason, and what to do. */
export function refusal(what: string, r: ApiReply): CliError {
  const b = (typeof r.body === 'object' && r.body !== null ? r.body : {}) as ErrorBody;
  const reason = b.message ?? (typeof r.body === 'string' && r.body ? r.body.slice(0, 300) : 'no reason given');
  const code = b.code ? ` ${b.code}` : '';
  return new CliError(`${what} was refused (${r.status}${code}): ${reason}. What to do: ${adviceOfStatus(r.status, b.code)}`, exitCodeOfStatus(r.status), r.body);
}
