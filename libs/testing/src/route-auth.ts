/// <reference types="jest" />
// Jest globals: this helper declares tests (the build compiles it with Node types only).
import { randomBytes } from 'node:crypto';
import { BEARER_SCHEME, ROLE_EXTENSION, type RoleName, ROLES } from '@flexmig/contracts';
import { craftedToken, testToken } from './auth';
import { httpJson, type JsonReply, startTestDatabase, startTestNats, type TestDatabase, type TestNats } from './infra';
import { freePort, ServiceProcess } from './processes';
import { validateOpenApi } from './openapi';

/** One HTTP route and the access it declares: what service-kit's `httpRoutesOfModule` reads from a module. */
export interface HttpRoute {
  method: string;
  path: string;
  access: RoleName | 'public' | undefined;
  handler: string;
}

/** A value for every `:param` that no lookup finds and every id schema accepts (the guard answers first anyway). */
const concrete = (path: string) => path.replace(/:\w+/g, '00000000-0000-4000-8000-00000000beef');
const below = (role: RoleName): RoleName[] => ROLES.slice(0, ROLES.indexOf(role));
const label = (r: HttpRoute) => `${r.method} ${r.path} (${r.access ?? 'no role'})`;

/**
 * The bearer-token checks of one service, table-driven from the routes of its root module (`routes`:
 * service-kit's `httpRoutesOfModule` of the module definition; nothing is connected), so that a new route is checked as soon as it exists and one
 * without a role fails here (and stops the service from starting): no or a bad token (garbage, expired,
 * another secret, issuer or audience, no `exp` or `sub`) → 401 with a Bearer challenge; a role below the
 * route's → 403; the route's own role → neither. The OpenAPI document it serves is valid (swagger-parser) and
 * declares the bearer scheme and each operation's role. The service runs as a real process (`npm run build` first) on NATS of the suite's own,
 * and PostgreSQL when `database`.
 */
export function describeRouteAuth(app: string, routes: HttpRoute[], { database = false } = {}): void {
  const guarded = routes.filter((r) => r.access !== 'public');
  let url = '';
  const base = () => url;
  const call = (r: HttpRoute, token: string | null): Promise<JsonReply> =>
    httpJson(base(), r.method, concrete(r.path), r.method === 'GET' ? undefined : {}, { token });

  describe(`${app}: every HTTP route requires its role`, () => {
    let nats: TestNats;
    let db: TestDatabase | undefined;
    let service: ServiceProcess | undefined;

    beforeAll(async () => {
      const suite = `${app.replace(/-/g, '_')}_auth`;
      nats = await startTestNats(suite);
      db = database ? await startTestDatabase(suite) : undefined;
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      const env = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn', PORT: String(port), ...(db ? { DATABASE_URL: db.url } : {}) };
      service = await new ServiceProcess(app, env, port).start();
    }, 60_000);

    afterAll(async () => {
      await service?.stop();
      await db?.stop();
      await nats?.stop();
    });

    it('declares a role or public on every route, and guards the API routes', () => {
      expect(routes.filter((r) => r.access === undefined).map(label)).toEqual([]);
      expect(guarded.length).toBeGreaterThan(0);
      expect(guarded.every((r) => r.path.startsWith('/api/'))).toBe(true);
      expect(routes.filter((r) => r.access === 'public').every((r) => /^\/(health\/|metrics$)/.test(r.path))).toBe(true);
    });

    const refusals: [string, () => Promise<string | null>][] = [
      ['no token', async () => null],
      ['a token that is not a JWT', async () => 'not-a-jwt'],
      ['an expired token', () => craftedToken({ exp: Math.floor(Date.now() / 1000) - 120 })],
      ['a token signed with another secret', () => craftedToken({ secret: randomBytes(32) })],
      ['a token for another audience', () => craftedToken({ aud: 'someone-else' })],
      ['a token from another issuer', () => craftedToken({ iss: 'someone-else' })],
      ['a token without an expiry', () => craftedToken({ exp: null })],
      ['a token without a subject', () => craftedToken({ sub: '' })],
    ];
    it.each(guarded.map((r) => [label(r), r] as const))('%s: 401 UNAUTHENTICATED with a Bearer challenge without a valid token', async (_, route) => {
      for (const [what, token] of refusals) {
        const r = await call(route, await token());
        expect({ what, status: r.status, code: r.body?.code }).toEqual({ what, status: 401, code: 'UNAUTHENTICATED' });
        expect(r.headers?.get('www-authenticate')).toMatch(/^Bearer /);
      }
    });

    it.each(guarded.map((r) => [label(r), r] as const))('%s: 403 FORBIDDEN below its role, allowed with it', async (_, route) => {
      const role = route.access as RoleName;
      for (const lower of below(role)) {
        const r = await call(route, await testToken(lower));
        expect({ lower, status: r.status, code: r.body?.code }).toEqual({ lower, status: 403, code: 'FORBIDDEN' });
      }
      const none = await call(route, await craftedToken({ roles: [] }));
      expect([none.status, none.body?.code]).toEqual([403, 'FORBIDDEN']);
      const allowed = await call(route, await testToken(role));
      expect([401, 403]).not.toContain(allowed.status);
    });

    it('leaves /health/* and /metrics open', async () => {
      for (const path of ['/health/live', '/health/ready', '/metrics']) expect((await fetch(`${base()}${path}`)).status).toBe(200);
    });

    it('serves a valid OpenAPI document that declares the bearer scheme and each operation role', async () => {
      const doc = (await httpJson(base(), 'GET', '/api/docs-json', undefined, { token: null })).body;
      await expect(validateOpenApi(doc)).resolves.toBeUndefined();
      expect(doc.components.securitySchemes[BEARER_SCHEME]).toMatchObject({ type: 'http', scheme: 'bearer' });
      const declared = Object.entries(doc.paths as Record<string, Record<string, { security?: unknown; [ROLE_EXTENSION]?: string }>>).flatMap(([path, ops]) =>
        Object.entries(ops).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`, security: op.security, role: op[ROLE_EXTENSION] })),
      );
      const expected = guarded.map((r) => ({ route: `${r.method} ${r.path}`, security: [{ [BEARER_SCHEME]: [] }], role: r.access }));
      expect(declared.sort((a, b) => a.route.localeCompare(b.route))).toEqual(expected.sort((a, b) => a.route.localeCompare(b.route)));
    });
  });
}
