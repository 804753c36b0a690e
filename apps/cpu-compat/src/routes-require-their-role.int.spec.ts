import { httpRoutesOfModule } from '@flexmig/service-kit';
import { freePort, httpJson, launchService, ServiceProcess, startTestNats, TestNats, describeRouteAuth } from '@flexmig/testing';
import { routesModule } from './openapi';

// Every route of cpu-compat's module against its role, on cpu-compat as a real process.
describeRouteAuth('cpu-compat', httpRoutesOfModule(routesModule()));

describe('cpu-compat started without tokens', () => {
  let nats: TestNats;
  beforeAll(async () => {
    nats = await startTestNats('cpu_auth_off');
  });
  afterAll(() => nats?.stop());

  it('refuses to start with no way to check tokens, saying what to set', async () => {
    for (const k of ['AUTH', 'AUTH_JWT_SECRET_FILE', 'AUTH_OIDC_ISSUER', 'AUTH_JWKS_URL']) delete process.env[k];
    const p = launchService('cpu-compat', { env: { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, PORT: String(await freePort()) } });
    const { code } = await p.exited;
    expect(code).toBe(1);
    const out = p.tail(10);
    for (const hint of ['AUTH_JWT_SECRET_FILE', 'npx flexmig auth init', 'AUTH_OIDC_ISSUER', 'AUTH_JWKS_URL', 'AUTH=off']) expect(out).toContain(hint);
  });

  it('with AUTH=off, warns at start and answers without a token', async () => {
    const port = await freePort();
    const off = await new ServiceProcess('cpu-compat', { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, PORT: String(port), AUTH: 'off' }, port).start();
    try {
      expect((await httpJson(`http://127.0.0.1:${port}`, 'GET', '/api/v1/cpu/models', undefined, { token: null })).status).toBe(200);
      expect(off.output.join('\n')).toMatch(/WARN.*AUTH=off/i);
    } finally {
      await off.stop();
    }
  }, 30_000);
});
