import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { ApiClient } from './client';
import { EvacuationWatcher } from './evacuation-watch';
import { findVm } from './resolve';
import { MigrationWatcher } from './watch';

// A stand-in API on a real socket: what the client does with pages, refusals, a live stream and its absence.

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

const step = (number: number, name: string, status: string) => ({ number, name, status, durationMs: status === 'completed' ? 10 : null, error: null });
const view = (state: string, steps: ReturnType<typeof step>[], progress: unknown = null) => ({
  id: 'm1', vmId: 'v1', sourceHostId: 'a', targetHostId: 'b', state, steps, progress,
  currentStep: steps.find((s) => s.status === 'running') ?? null, result: state === 'completed' ? { totalTimeMs: 100, downtimeMs: 5, bytesTransferred: 1024, passes: 1 } : null, failure: null, attention: null,
});
const sample = { migrationId: 'm1', vmId: 'v1', hostId: 'a', step: 4, pass: 1, percent: 40, totalBytes: 100, transferredBytes: 40, remainingBytes: 60, dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 1024, expectedDowntimeMs: 3, throttlePct: 0, at: 'T' };

describe('ApiClient and MigrationWatcher against a stand-in API', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it('given a list with nextCursor, then every page is followed; given plain items, then one page', async () => {
    const seen: string[] = [];
    const s = await serve((req, res) => {
      seen.push(req.url!);
      const cursor = new URL(req.url!, 'http://x').searchParams.get('cursor');
      if (req.url!.startsWith('/api/v1/vms')) return json(res, 200, { items: [{ id: 'only' }] });
      json(res, 200, cursor === null ? { items: [1, 2], nextCursor: 'p2' } : cursor === 'p2' ? { items: [3], nextCursor: 'p3' } : { items: [4], nextCursor: null });
    });
    server = s.server;
    const api = new ApiClient({ url: s.url, token: 't', timeoutMs: 5000 });
    expect(await api.list('/api/v1/migrations', { state: 'running' })).toEqual([1, 2, 3, 4]);
    // each page the largest the API gives
    expect(seen).toEqual(['/api/v1/migrations?state=running&limit=1000', '/api/v1/migrations?state=running&limit=1000&cursor=p2', '/api/v1/migrations?state=running&limit=1000&cursor=p3']);
    expect(await api.list('/api/v1/vms')).toEqual([{ id: 'only' }]);
  });

  it('given the first n of a history, then pages of at most n until n are read, and whether more follow', async () => {
    const seen: string[] = [];
    const s = await serve((req, res) => {
      seen.push(req.url!);
      const u = new URL(req.url!, 'http://x');
      if (u.pathname === '/api/v1/evacuations') return json(res, 200, ['e3', 'e2', 'e1']); // a server that sends it whole
      const cursor = u.searchParams.get('cursor');
      // a server that answers fewer than asked per page: 2, then 2, then the last 1
      json(res, 200, cursor === null ? { items: ['m5', 'm4'], nextCursor: 'p2' } : cursor === 'p2' ? { items: ['m3', 'm2'], nextCursor: 'p3' } : { items: ['m1'], nextCursor: null });
    });
    server = s.server;
    const api = new ApiClient({ url: s.url, token: 't', timeoutMs: 5000 });
    expect(await api.first('/api/v1/migrations', { state: 'completed' }, 3)).toEqual({ items: ['m5', 'm4', 'm3'], more: true });
    expect(seen).toEqual(['/api/v1/migrations?state=completed&limit=3', '/api/v1/migrations?state=completed&limit=3&cursor=p2']);
    expect(await api.first('/api/v1/migrations', {}, 4)).toEqual({ items: ['m5', 'm4', 'm3', 'm2'], more: true });
    expect(await api.first('/api/v1/migrations', {}, 5)).toEqual({ items: ['m5', 'm4', 'm3', 'm2', 'm1'], more: false });
    expect(await api.first('/api/v1/migrations', {}, 5000)).toEqual({ items: ['m5', 'm4', 'm3', 'm2', 'm1'], more: false });
    expect(seen.at(-1)).toBe('/api/v1/migrations?limit=1000&cursor=p3'); // never more than the API's largest page
    expect(await api.first('/api/v1/evacuations', {}, 2)).toEqual({ items: ['e3', 'e2'], more: true });
    expect(await api.first('/api/v1/evacuations', {}, 3)).toEqual({ items: ['e3', 'e2', 'e1'], more: false });
  });

  it("given a VM by name, then only that name's VMs are asked for; a server that refuses the filter (400), then every VM, compared here", async () => {
    const vm = (id: string, name: string) => ({ id, name });
    const seen: string[] = [];
    let filters = true;
    const s = await serve((req, res) => {
      seen.push(req.url!);
      const q = new URL(req.url!, 'http://x').searchParams;
      if (q.has('name') && !filters) return json(res, 400, { code: 'VALIDATION_FAILED', message: 'query is invalid: unrecognized key: "name"' });
      const all = [vm('11111111-1111-4111-8111-111111111111', 'web'), vm('22222222-2222-4222-8222-222222222222', 'db')];
      json(res, 200, { items: all.filter((v) => !q.has('name') || v.name === q.get('name')), nextCursor: null });
    });
    server = s.server;
    const api = new ApiClient({ url: s.url, token: 't', timeoutMs: 5000 });
    expect(await findVm(api, 'db')).toEqual(vm('22222222-2222-4222-8222-222222222222', 'db'));
    expect(seen).toEqual(['/api/v1/vms?name=db&limit=1000']);
    filters = false;
    seen.length = 0;
    expect(await findVm(api, 'web')).toEqual(vm('11111111-1111-4111-8111-111111111111', 'web'));
    expect(seen).toEqual(['/api/v1/vms?name=web&limit=1000', '/api/v1/vms?limit=1000']);
    await expect(findVm(api, 'nope')).rejects.toThrow('no VM is named nope');
    // what no VM can be named is refused without reading every VM
    seen.length = 0;
    for (const key of ['db 1', '-db', 'x'.repeat(64), '']) {
      await expect(findVm(api, key)).rejects.toMatchObject({ message: expect.stringContaining(`${JSON.stringify(key)} is neither a VM's id nor a name`), exitCode: 3 });
    }
    expect(seen).toEqual([]);
  });

  it('given pages of hosts, then every host comes with its CPU feature list from its own page', async () => {
    const host = (id: string, featureSet: string) => ({ id, cpu: { vendor: 'Intel', modelName: 'Xeon', featureSet } });
    const s = await serve((req, res) => {
      const cursor = new URL(req.url!, 'http://x').searchParams.get('cursor');
      json(
        res,
        200,
        cursor === null
          ? { items: [host('a', 'd1'), host('b', 'd2')], featureSets: { d1: ['sse2'], d2: ['sse2', 'avx'] }, nextCursor: 'b' }
          : { items: [host('c', 'd1')], featureSets: { d1: ['sse2'] }, nextCursor: null },
      );
    });
    server = s.server;
    const api = new ApiClient({ url: s.url, token: 't', timeoutMs: 5000 });
    expect((await api.hosts({ clusterId: 'c1' })).map((h) => [h.id, h.cpu])).toEqual([
      ['a', { vendor: 'Intel', modelName: 'Xeon', features: ['sse2'] }],
      ['b', { vendor: 'Intel', modelName: 'Xeon', features: ['sse2', 'avx'] }],
      ['c', { vendor: 'Intel', modelName: 'Xeon', features: ['sse2'] }],
    ]);
  });

  it('given a paged report, then each page comes as the server answered it, its summary beside its items', async () => {
    const s = await serve((req, res) => {
      const cursor = new URL(req.url!, 'http://x').searchParams.get('cursor');
      json(res, 200, cursor === null ? { hostsChecked: 2, items: ['a'], nextCursor: 'p2' } : { hostsChecked: 3, items: ['b'], nextCursor: null });
    });
    server = s.server;
    const api = new ApiClient({ url: s.url, token: 't', timeoutMs: 5000 });
    const pages: unknown[] = [];
    for await (const p of api.pages('/api/v1/reconciliation', { kind: 'missing' })) pages.push(p);
    expect(pages).toEqual([
      { hostsChecked: 2, items: ['a'], nextCursor: 'p2' },
      { hostsChecked: 3, items: ['b'], nextCursor: null },
    ]);
  });

  it('given no live stream (404), then the watcher says so and polls GET /migrations/:id to the end', async () => {
    let gets = 0;
    const s = await serve((req, res) => {
      if (req.url === '/api/v1/migrations/m1/events') return json(res, 404, { code: 'NOT_FOUND', message: 'no route' });
      gets++;
      json(res, 200, gets === 1 ? view('running', [step(1, 'verify-compatibility', 'completed'), step(4, 'transfer-memory', 'running')], sample) : view('completed', [step(1, 'verify-compatibility', 'completed'), step(4, 'transfer-memory', 'completed')]));
    });
    server = s.server;
    const out = new Collect();
    const w = new MigrationWatcher(new ApiClient({ url: s.url, timeoutMs: 5000 }), out as unknown as NodeJS.WriteStream);
    const ended = await w.follow('m1');
    expect([ended.state, w.via]).toEqual(['completed', 'polling']);
    expect(out.text.split('\n')).toEqual([
      '  (no live stream from this server: following the migration by polling)',
      '  step 1 verify-compatibility: completed in 10 ms',
      '  step 4 transfer-memory: running',
      expect.stringMatching(/^ {2}step 4  pass 1  \[#{12}\.{18}\]  40\.0%  1\.0 KiB\/s/),
      '  step 4 transfer-memory: completed in 10 ms',
      '',
    ]);
  });

  it('given a live stream, then progress comes from it and the watcher ends at the terminal event', async () => {
    let done = false;
    const s = await serve((req, res) => {
      if (req.url === '/api/v1/migrations/m1/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': hello\n\n');
        res.write(`event: migration.progress\ndata: ${JSON.stringify(sample)}\n\n`);
        done = true;
        res.write(`id: 9\nevent: migration.completed\ndata: {"subject":"m1"}\n\n`);
        return; // left open, as a live stream is
      }
      json(res, 200, done ? view('completed', [step(9, 'commit', 'completed')]) : view('running', []));
    });
    server = s.server;
    const out = new Collect();
    const w = new MigrationWatcher(new ApiClient({ url: s.url, timeoutMs: 5000 }), out as unknown as NodeJS.WriteStream);
    expect((await w.follow('m1')).state).toBe('completed');
    expect(w.via).toBe('stream');
    expect(out.text).toMatch(/^ {2}step 4 {2}pass 1 {2}\[#{12}/);
    expect(out.text).toContain('  step 9 commit: completed in 10 ms\n');
    server!.closeAllConnections();
  });

  it('given no live stream of an evacuation, then the watcher polls it and each moving VM\'s migration, and prints the table when it changes', async () => {
    let gets = 0;
    const vm = (outcome: string, migrationState: string) => ({ vmId: 'v1', name: 'web', migrationId: 'm1', migrationState, targetHostId: 'b', outcome, reason: null, code: null });
    const evac = (state: string, item: ReturnType<typeof vm>) => ({ id: 'e1', hostId: 'a', state, counts: { total: 1, moving: state === 'running' ? 1 : 0, moved: state === 'running' ? 0 : 1, failed: 0, notMoved: 0 }, vms: [item] });
    const s = await serve((req, res) => {
      if (req.url === '/api/v1/evacuations/e1/events') return json(res, 404, { code: 'NOT_FOUND', message: 'no route' });
      if (req.url === '/api/v1/migrations/m1') return json(res, 200, view('running', [], sample));
      gets++;
      json(res, 200, gets === 1 ? evac('running', vm('moving', 'running')) : evac('completed', vm('moved', 'completed')));
    });
    server = s.server;
    const out = new Collect();
    const w = new EvacuationWatcher(new ApiClient({ url: s.url, timeoutMs: 5000 }), out as unknown as NodeJS.WriteStream);
    expect((await w.follow('e1')).state).toBe('completed');
    expect(w.via).toBe('polling');
    expect(out.text).toContain('  (no live stream from this server: following the evacuation by polling)\nevacuation e1 of a: running');
    expect(out.text).toMatch(/\nweb +moving +running +b +\[#{8}\.{12}\]  40\.0%/);
    expect(out.text).toMatch(/evacuation e1 of a: completed \(1 moved[^\n]*\n[^\n]*\nweb +moved +completed +b/);
  });

  it('given a refusal, then a CliError with exit 3 and the API body; given a closed port, exit 4', async () => {
    const s = await serve((_req, res) => json(res, 409, { code: 'MIGRATION_ACTIVE', message: 'VM v1 is migrating' }));
    server = s.server;
    const api = new ApiClient({ url: s.url, timeoutMs: 5000 });
    await expect(api.post('/api/v1/migrations', { vmId: 'v1' })).rejects.toMatchObject({ exitCode: 3, body: { code: 'MIGRATION_ACTIVE' }, message: expect.stringContaining('(409 MIGRATION_ACTIVE): VM v1 is migrating') });
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    await expect(api.get('/api/v1/hosts')).rejects.toMatchObject({ exitCode: 4, message: expect.stringContaining('ECONNREFUSED') });
  });
});
