/**
 * The console's API client against a real HTTP server on loopback: lists followed by nextCursor or read
 * whole, the 401 hook, and the live stream parsed, resumed with Last-Event-ID after a drop.
 * (Jest runs it with Node's fetch; sessionStorage is the one browser global it needs.)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as api from './api';

// api.ts reads sessionStorage when it sends, not when it loads
const store = new Map<string, string>();
Object.assign(globalThis, {
  sessionStorage: { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v), removeItem: (k: string) => store.delete(k) },
});

describe('the web console API client', () => {
  let server: Server;
  let base: string;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  const seen: { url: string; auth?: string; lastEventId?: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url!, auth: req.headers.authorization, lastEventId: req.headers['last-event-id'] as string | undefined });
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    api.token.set('tok');
  });
  afterAll(() => new Promise((r) => server.close(r)));
  beforeEach(() => (seen.length = 0));
  const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  it('given a paginated list, then it follows nextCursor to the end, with the bearer token', async () => {
    handler = (req, res) => {
      const cursor = new URL(req.url!, base).searchParams.get('cursor');
      json(res, 200, cursor === null ? { items: [1, 2], nextCursor: 'c2' } : cursor === 'c2' ? { items: [3], nextCursor: 'c3' } : { items: [4], nextCursor: null });
    };
    expect(await api.list(`${base}/api/v1/vms`, { hostId: 'host-a' })).toEqual([1, 2, 3, 4]);
    expect(seen.map((s) => s.url)).toEqual(['/api/v1/vms?hostId=host-a&limit=500', '/api/v1/vms?hostId=host-a&limit=500&cursor=c2', '/api/v1/vms?hostId=host-a&limit=500&cursor=c3']);
    expect(seen.every((s) => s.auth === 'Bearer tok')).toBe(true);
  });

  it('given a page of a paged report asked for, then that page with its summary, as the server sent it', async () => {
    handler = (req, res) => {
      const cursor = new URL(req.url!, base).searchParams.get('cursor');
      json(res, 200, cursor === null ? { hostsChecked: 2, items: ['a', 'b'], nextCursor: 'c2' } : { hostsChecked: 3, items: ['c'], nextCursor: null });
    };
    expect(await api.reportPage(`${base}/api/v1/reconciliation`, { kind: 'orphaned' }, { limit: 2 })).toEqual({ hostsChecked: 2, items: ['a', 'b'], nextCursor: 'c2' });
    expect(await api.reportPage(`${base}/api/v1/reconciliation`, { kind: 'orphaned' }, { limit: 2, cursor: 'c2' })).toEqual({ hostsChecked: 3, items: ['c'], nextCursor: null });
    expect(seen.map((s) => s.url)).toEqual(['/api/v1/reconciliation?kind=orphaned&limit=2', '/api/v1/reconciliation?kind=orphaned&limit=2&cursor=c2']);
  });

  it('given one page asked for, then exactly that page with its filters, limit and cursor, and its nextCursor', async () => {
    handler = (req, res) => {
      const cursor = new URL(req.url!, base).searchParams.get('cursor');
      json(res, 200, cursor === null ? { items: ['m3', 'm2'], nextCursor: 'c2' } : { items: ['m1'], nextCursor: null });
    };
    expect(await api.onePage(`${base}/api/v1/migrations`, { state: 'completed', vmId: undefined }, { limit: 2 })).toEqual({ items: ['m3', 'm2'], nextCursor: 'c2' });
    expect(await api.onePage(`${base}/api/v1/migrations`, { state: 'completed' }, { limit: 2, cursor: 'c2' })).toEqual({ items: ['m1'], nextCursor: null });
    expect(seen.map((s) => s.url)).toEqual(['/api/v1/migrations?state=completed&limit=2', '/api/v1/migrations?state=completed&limit=2&cursor=c2']);
    // a server that sends the whole list at once: one last page
    handler = (_req, res) => json(res, 200, ['a', 'b', 'c']);
    expect(await api.onePage(`${base}/api/v1/evacuations`, {}, { limit: 2 })).toEqual({ items: ['a', 'b', 'c'], nextCursor: null });
    handler = (_req, res) => json(res, 200, { items: ['a'] });
    expect(await api.onePage(`${base}/api/v1/evacuations`, {}, { limit: 2 })).toEqual({ items: ['a'], nextCursor: null });
  });

  it('given a list the server sends whole ({items}), then those items in one call', async () => {
    handler = (_req, res) => json(res, 200, { items: ['a', 'b'] });
    expect(await api.list(`${base}/api/v1/hosts`)).toEqual(['a', 'b']);
    expect(seen).toHaveLength(1);
  });

  it('given 401, then the error carries the service\'s message and the login hook hears the reason', async () => {
    handler = (_req, res) => json(res, 401, { code: 'UNAUTHENTICATED', message: 'the token expired' });
    const reasons: string[] = [];
    api.whenUnauthenticated((r) => reasons.push(r));
    await expect(api.get(`${base}/api/v1/hosts`)).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED', message: 'the token expired' });
    expect(reasons).toEqual(['the token expired (401 UNAUTHENTICATED)']);
  });

  it('given a live stream that drops, then its messages parsed in order, and the reconnect resumes with Last-Event-ID', async () => {
    let connections = 0;
    handler = (_req, res) => {
      connections++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (connections === 1) {
        // split across writes, a comment, a sample without id, CRLF line ends
        res.write(': keep-alive\n\nid: 7\nevent: migration.requested\nda');
        res.write('ta: {"n":1}\n\nevent: migration.progress\r\ndata: {"percent":50}\r\n\r\n');
        res.end(); // dropped
      } else res.end('id: 8\nevent: migration.completed\ndata: {"n":2}\n\n');
    };
    const got: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      const s = api.openStream(`${base}/api/v1/migrations/m/events`, (m) => {
        got.push(m);
        if (m.event === 'migration.completed') {
          s.close();
          resolve();
        }
      });
    });
    await done;
    expect(got).toEqual([
      { id: '7', event: 'migration.requested', data: { n: 1 } },
      { id: undefined, event: 'migration.progress', data: { percent: 50 } },
      { id: '8', event: 'migration.completed', data: { n: 2 } },
    ]);
    expect(seen.map((s) => s.lastEventId)).toEqual([undefined, '7']);
  });
});
