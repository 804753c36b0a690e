/**
 * The console as built, in front of the real services (inventory, scheduler, cpu-compat, two sim agents)
 * on a NATS server of the suite's own in operator mode (every process with its own identity, the console
 * with the `console` one) and PostgreSQL: one URL for the whole API, and the live streams.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, httpJson, ServiceProcess, startTestDatabase, startTestNats, testToken, validateOpenApi, waitFor, type TestDatabase, type TestNats } from '@flexmig/testing';
import { ownerOf } from '../src/routing/route-table';
import { openSse, readUntil, type SseMessage, type SseStream } from './sse-client';

const TERMINAL = ['migration.completed', 'migration.rolled-back', 'migration.cancelled', 'migration.failed'];
const MAX_STREAMS = 3;

describe('the console: one URL for the API, and live streams', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let nc: NatsConnection;
  const procs = new Map<string, ServiceProcess>();
  const url: Record<string, string> = {};
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-console-agents-'));
  const hosts = [
    { id: 'host-a', cpu: 'Westmere' },
    { id: 'host-c', cpu: 'IvyBridge' },
  ];
  const api = (method: string, route: string, body?: unknown, opts?: Parameters<typeof httpJson>[4]) => httpJson(url.console, method, route, body, opts);
  const consumersOfTheConsole = async () => {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const c of jsm.consumers.list(`${nats.prefix.toUpperCase()}_EVENTS`)) if (c.name.startsWith('console_')) names.push(c.name);
    return names;
  };

  beforeAll(async () => {
    nats = await startTestNats('console', { auth: true });
    db = await startTestDatabase('console');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    const start = async (name: string, app: string, env: Record<string, string>) => {
      const port = await freePort();
      url[name] = `http://127.0.0.1:${port}`;
      procs.set(name, await new ServiceProcess(app, { ...common, ...env, PORT: String(port) }, port, name).start());
    };
    for (const app of ['cpu-compat', 'inventory', 'scheduler'] as const) await start(app, app, nats.serviceEnv(app));
    for (const h of hosts) {
      await start(h.id, 'agent', { ...(await nats.agentEnv(h.id)), HOST_ID: h.id, CLUSTER_NAME: 'console', SIM_CPU: h.cpu, AGENT_STATE_DIR: stateDir, SIM_TIME_SCALE: '0.05', HEARTBEAT_INTERVAL_MS: '500' });
    }
    await start('console', 'console', {
      ...nats.serviceEnv('console'),
      INVENTORY_URL: url.inventory,
      SCHEDULER_URL: url.scheduler,
      CPU_COMPAT_URL: url['cpu-compat'],
      SSE_MAX_STREAMS: String(MAX_STREAMS),
      SSE_HEARTBEAT_MS: '200',
      HTTP_BODY_LIMIT: '4096',
    });
    await waitFor('both hosts up', async () => (await api('GET', '/api/v1/hosts')).body.items?.filter((h: any) => h.state === 'up').length === hosts.length, { timeoutMs: 30_000 });
    nc = await connect({ servers: nats.url, ...nats.observer() });
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    for (const p of [...procs.values()].reverse()) await p.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  describe('routing /api/v1 by path', () => {
    it('given every path of every service\'s OpenAPI document, then the route table sends it to that service', async () => {
      for (const service of ['inventory', 'scheduler', 'cpu-compat']) {
        const doc = (await httpJson(url[service], 'GET', '/api/docs-json')).body;
        const paths = Object.keys(doc.paths).map((p) => p.replace(/\{[^}]+\}/g, 'x'));
        expect(paths.length).toBeGreaterThan(0);
        for (const p of paths) expect([p, ownerOf(p)]).toEqual([p, service]);
      }
    });

    it('given a path of each service, then the console answers with what that service answers', async () => {
      const cluster = (await api('GET', '/api/v1/clusters')).body.items[0];
      // (not /hosts: a heartbeat may land between the two calls)
      for (const [route, service] of [
        ['/api/v1/vms', 'inventory'],
        ['/api/v1/clusters', 'inventory'],
        [`/api/v1/clusters/${cluster.id}/migration-settings`, 'scheduler'],
        ['/api/v1/migrations?state=completed', 'scheduler'],
        ['/api/v1/cpu/models/Westmere', 'cpu-compat'],
      ]) {
        const [via, direct] = [await api('GET', route), await httpJson(url[service], 'GET', route)];
        expect([route, via.status, via.body]).toEqual([route, 200, direct.body]);
      }
    });

    it('given a body, then it reaches the service (a VM created through the console)', async () => {
      const created = await api('POST', '/api/v1/vms', { name: 'routed', hostId: 'host-c', memoryMiB: 512, vcpus: 1 });
      expect(created).toMatchObject({ status: 201, body: { name: 'routed', hostId: 'host-c' } });
      expect((await httpJson(url.inventory, 'GET', `/api/v1/vms/${created.body.id}`)).body.name).toBe('routed');
    });

    it('given a path nobody serves, then 404 NOT_FOUND in the services\' error shape, pointing at the document', async () => {
      const r = await api('GET', '/api/v1/nothing-here');
      expect([r.status, r.body.code]).toEqual([404, 'NOT_FOUND']);
      expect(r.body.message).toContain('/api/v1/openapi.json');
      // dot segments as sent (fetch would resolve them first): owned by nobody, not by what they resolve to
      for (const route of ['/api/v1/hosts/../migrations', '/api/v1/hosts/%2e%2e/migrations']) {
        const raw = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
          const { hostname, port } = new URL(url.console);
          const req = request({ hostname, port, path: route }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode, body }));
          });
          req.on('error', reject).end();
        });
        expect([route, raw.status, JSON.parse(raw.body).code]).toEqual([route, 404, 'NOT_FOUND']);
      }
    });

    it('given no token, then the owner refuses with 401 and its Bearer challenge; given a viewer token, the owner refuses a write with 403', async () => {
      const none = await api('GET', '/api/v1/hosts', undefined, { token: null });
      expect(none).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
      expect(none.headers?.get('www-authenticate')).toBe('Bearer realm="flexmig"');
      const viewer = await api('POST', '/api/v1/vms', { name: 'nope', hostId: 'host-c', memoryMiB: 512, vcpus: 1 }, { token: await testToken('viewer') });
      expect(viewer).toMatchObject({ status: 403, body: { code: 'FORBIDDEN', details: { required: 'operator', roles: ['viewer'] } } });
    });

    it('given a body over HTTP_BODY_LIMIT, declared or streamed, then 413 PAYLOAD_TOO_LARGE', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(5000) });
      expect(await api('POST', '/api/v1/vms', big)).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE', details: { limitBytes: 4096 } } });
      const chunks = [big.slice(0, 3000), big.slice(3000)];
      const streamed = await fetch(`${url.console}/api/v1/vms`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await testToken('admin')}` },
        body: new ReadableStream({ pull: (c) => (chunks.length ? c.enqueue(new TextEncoder().encode(chunks.shift())) : c.close()) }),
        duplex: 'half',
      } as RequestInit);
      expect([streamed.status, ((await streamed.json()) as any).code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    });

    it('serves one valid OpenAPI document (swagger-parser) with the paths of the three services and the live streams', async () => {
      const doc = (await api('GET', '/api/v1/openapi.json', undefined, { token: null })).body;
      await expect(validateOpenApi(doc)).resolves.toBeUndefined();
      const paths = Object.keys(doc.paths);
      for (const p of ['/api/v1/hosts', '/api/v1/migrations', '/api/v1/cpu/models', '/api/v1/events', '/api/v1/migrations/{id}/events']) expect(paths).toContain(p);
      expect(doc.info.title).toBe('flexmig');
    });
  });

  describe('live streams (Server-Sent Events)', () => {
    let migrationEvents: SseMessage[] = [];

    it('given a migration started through the console, then its stream carries every event to the terminal outcome, and progress is live', async () => {
      const viewer = await testToken('viewer');
      const progress = await openSse(`${url.console}/api/v1/events?types=migration.progress`, { token: viewer });
      expect(progress.status).toBe(200);
      const vm = (await api('POST', '/api/v1/vms', { name: 'watched', hostId: 'host-c', memoryMiB: 2048, vcpus: 2 })).body;
      const accepted = await api('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'host-a' });
      expect(accepted.status).toBe(202);
      const id = accepted.body.id;

      const stream = await openSse(`${url.console}/api/v1/migrations/${id}/events`, { token: viewer });
      expect(stream.status).toBe(200);
      const all = await readUntil(stream, (m) => TERMINAL.includes(m.event));
      stream.close();
      migrationEvents = all.filter((m) => m.id !== undefined);
      expect(migrationEvents.map((m) => [m.event, m.data.data.step ?? null])).toEqual([
        ['migration.requested', null],
        ...[1, 2, 3, 4, 5, 6, 7, 8, 9].map((step) => ['migration.step-completed', step]),
        ['migration.completed', null],
      ]);
      for (const m of migrationEvents) expect([m.data.subject, m.data.specversion]).toEqual([id, '1.0']);
      const seqs = migrationEvents.map((m) => Number(m.id));
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      // progress samples of this migration only, and no id: they are not replayed
      for (const m of all.filter((x) => x.event === 'migration.progress')) expect([m.id, m.data.migrationId]).toEqual([undefined, id]);

      const sample = (await readUntil(progress, (m) => m.data.migrationId === id)).pop();
      progress.close();
      expect(sample).toMatchObject({ id: undefined, event: 'migration.progress', data: { migrationId: id, vmId: vm.id, step: expect.any(Number), percent: expect.any(Number) } });
    });

    it('given progress samples whose body names another host or migration than their subject, then only the genuine one is delivered', async () => {
      const progress = await openSse(`${url.console}/api/v1/events?types=migration.progress`, { token: await testToken('viewer') });
      const [forged, other, genuine] = [randomUUID(), randomUUID(), randomUUID()];
      const sample = (migrationId: string, hostId: string) =>
        JSON.stringify({
          migrationId, vmId: randomUUID(), hostId, step: 3, pass: 1, percent: 10, totalBytes: 100, transferredBytes: 10, remainingBytes: 90,
          dirtyRateBytesPerSec: 0, bandwidthBytesPerSec: 1, expectedDowntimeMs: 1, throttlePct: 0, at: new Date().toISOString(),
        });
      const subject = (migrationId: string) => `${nats.prefix}.progress.migration.${migrationId}.host-a`;
      // what host-a's identity may publish (its own host in the subject), speaking for host-c, then for another migration
      nc.publish(subject(forged), sample(forged, 'host-c'));
      nc.publish(subject(forged), sample(other, 'host-a'));
      nc.publish(subject(genuine), sample(genuine, 'host-a'));
      const got = await readUntil(progress, (m) => m.data.migrationId === genuine);
      progress.close();
      expect(got.map((m) => m.data.migrationId)).not.toEqual(expect.arrayContaining([forged]));
      expect(got.map((m) => m.data.migrationId)).not.toEqual(expect.arrayContaining([other]));
      expect(got.pop()).toMatchObject({ event: 'migration.progress', data: { migrationId: genuine, hostId: 'host-a' } });
    });

    it('given a reconnect with Last-Event-ID, then only the later events come, in order', async () => {
      const id = migrationEvents[0].data.subject;
      const resumeAfter = migrationEvents[4];
      const stream = await openSse(`${url.console}/api/v1/migrations/${id}/events`, { token: await testToken('viewer'), lastEventId: resumeAfter.id });
      const later = (await readUntil(stream, (m) => TERMINAL.includes(m.event))).filter((m) => m.id !== undefined);
      stream.close();
      expect(later.map((m) => [m.id, m.event])).toEqual(migrationEvents.slice(5).map((m) => [m.id, m.event]));
    });

    it('given Last-Event-ID 0, then every event the stream keeps, from its first', async () => {
      const stream = await openSse(`${url.console}/api/v1/events`, { token: await testToken('viewer'), lastEventId: '0' });
      const [first] = await readUntil(stream, () => true);
      stream.close();
      expect(first.id).toBe('1');
    });

    it('given types, then only those; new events only without Last-Event-ID', async () => {
      const stream = await openSse(`${url.console}/api/v1/events?types=vm.*`, { token: await testToken('viewer') });
      const vm = (await api('POST', '/api/v1/vms', { name: 'announced', hostId: 'host-a', memoryMiB: 512, vcpus: 1 })).body;
      const [first] = await readUntil(stream, () => true);
      stream.close();
      expect(first).toMatchObject({ event: 'vm.started', data: { type: 'vm.started', data: { vmId: vm.id } } });
    });

    it('given an evacuation, then its stream carries the events and progress of the migrations it started, to each outcome', async () => {
      const evacuation = await api('POST', '/api/v1/evacuations', { hostId: 'host-c' });
      expect(evacuation.status).toBe(202);
      const ids: string[] = evacuation.body.vms.flatMap((v: any) => (v.migrationId ? [v.migrationId] : []));
      expect(ids.length).toBeGreaterThan(0);
      const stream = await openSse(`${url.console}/api/v1/evacuations/${evacuation.body.id}/events`, { token: await testToken('viewer') });
      const ended = new Set<string>();
      const got = await readUntil(stream, (m) => {
        if (TERMINAL.includes(m.event)) ended.add(m.data.subject);
        return ended.size === ids.length;
      });
      stream.close();
      for (const m of got) expect(ids).toContain(m.event === 'migration.progress' ? m.data.migrationId : m.data.subject);
      expect(got.filter((m) => m.event === 'migration.completed').map((m) => m.data.subject).sort()).toEqual([...ids].sort());
      expect(got.filter((m) => m.event === 'migration.requested')).toHaveLength(ids.length);
    });

    it('refuses without a token (401), with a bad Last-Event-ID or an unknown type (400), for a migration the scheduler does not know (404)', async () => {
      const none = await openSse(`${url.console}/api/v1/events`, { token: null });
      expect([none.status, none.error.code]).toEqual([401, 'UNAUTHENTICATED']);
      const viewer = await testToken('viewer');
      const badId = await openSse(`${url.console}/api/v1/events`, { token: viewer, lastEventId: 'abc' });
      expect([badId.status, badId.error.code]).toEqual([400, 'VALIDATION_FAILED']);
      const badType = await openSse(`${url.console}/api/v1/events?types=host.exploded`, { token: viewer });
      expect([badType.status, badType.error.code]).toEqual([400, 'VALIDATION_FAILED']);
      expect(badType.error.message).toContain('host.down');
      const unknown = await openSse(`${url.console}/api/v1/migrations/00000000-0000-4000-8000-00000000beef/events`, { token: viewer });
      expect([unknown.status, unknown.error.code]).toEqual([404, 'NOT_FOUND']);
    });

    it('given SSE_MAX_STREAMS streams open, then one more is refused with 503; a closed stream frees its slot and its consumer; idle streams get heartbeats', async () => {
      const viewer = await testToken('viewer');
      const open: SseStream[] = [];
      for (let i = 0; i < MAX_STREAMS; i++) open.push(await openSse(`${url.console}/api/v1/events?types=host.*`, { token: viewer }));
      expect(open.map((s) => s.status)).toEqual(Array(MAX_STREAMS).fill(200));
      const refused = await openSse(`${url.console}/api/v1/events`, { token: viewer });
      expect([refused.status, refused.error.code, refused.error.details.reason]).toEqual([503, 'UNAVAILABLE', 'too-many-streams']);
      await waitFor('a heartbeat on an idle stream', async () => {
        const pending = open[0].next();
        await Promise.race([pending, new Promise((r) => setTimeout(r, 500))]);
        return open[0].comments.includes('keep-alive');
      });
      expect((await consumersOfTheConsole()).length).toBe(MAX_STREAMS);
      open.shift()!.close();
      const again = await waitFor('a freed slot', async () => {
        const s = await openSse(`${url.console}/api/v1/events?types=host.*`, { token: viewer });
        return s.status === 200 ? s : undefined;
      });
      open.push(again);
      for (const s of open) s.close();
      await waitFor('the console\'s consumers deleted', async () => (await consumersOfTheConsole()).length === 0);
    });
  });

  describe('an owner that is down or silent', () => {
    it('given an owner that accepts the connection and never answers, then 504 TIMEOUT after PROXY_TIMEOUT_MS, naming it', async () => {
      const silent = createServer(() => undefined); // takes the connection, says nothing
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const port = await freePort();
      const impatient = await new ServiceProcess(
        'console',
        { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn', ...nats.serviceEnv('console'), PORT: String(port), INVENTORY_URL: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, PROXY_TIMEOUT_MS: '300' },
        port,
        'console-impatient',
      ).start();
      try {
        const r = await httpJson(`http://127.0.0.1:${port}`, 'GET', '/api/v1/hosts');
        expect(r).toMatchObject({ status: 504, body: { code: 'TIMEOUT', details: { service: 'inventory', timeoutMs: 300 } } });
        expect(r.body.message).toContain('PROXY_TIMEOUT_MS');
      } finally {
        await impatient.stop();
        silent.closeAllConnections();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    it('given cpu-compat stopped, then its paths answer 503 UNAVAILABLE naming it and CPU_COMPAT_URL, and the other services still answer', async () => {
      await procs.get('cpu-compat')!.stop();
      const r = await api('GET', '/api/v1/cpu/models');
      expect(r).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE', details: { service: 'cpu-compat', url: url['cpu-compat'] } } });
      expect(r.body.message).toContain('CPU_COMPAT_URL');
      expect((await api('GET', '/api/v1/hosts')).status).toBe(200);
      const doc = await api('GET', '/api/v1/openapi.json');
      expect([doc.status, doc.body.details.service]).toEqual([503, 'cpu-compat']);
    });
  });
});
