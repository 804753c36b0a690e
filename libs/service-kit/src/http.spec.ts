import { Logger } from '@nestjs/common';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { signToken } from '@flexmig/nats-auth';
import { type ProbeApp, probePage, startProbeApp, UndeclaredModule } from './auth/test-helpers';
import { authSettingsFromEnv, ConfigurationError } from './auth/auth-settings';

const secret = new TextEncoder().encode(randomBytes(32).toString('base64url'));

describe('HTTP hygiene', () => {
  let probe: ProbeApp;
  let operator: string;
  const logged: string[] = [];

  beforeAll(async () => {
    probe = await startProbeApp({ auth: { mode: 'on', secret }, bodyLimitBytes: 256 * 1024 });
    operator = await signToken(secret, { sub: 'alice', roles: ['operator'] });
    jest.spyOn(Logger.prototype, 'error').mockImplementation((message: unknown) => void logged.push(String(message)));
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await probe.app.close();
  });

  it('answers a body above the limit with 413 PAYLOAD_TOO_LARGE, and one below it normally', async () => {
    const big = JSON.stringify({ blob: 'x'.repeat(2 * 1024 * 1024) });
    const r = await probe.call('POST', '/t/write', { token: operator, body: big });
    expect(r).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE', details: { limitBytes: 262_144 } } });
    const fits = await probe.call('POST', '/t/write', { token: operator, body: JSON.stringify({ blob: 'x'.repeat(200 * 1024) }) });
    expect(fits.status).toBe(201);
  });

  it('answers a long page as JSON.stringify would, with the JSON content type, like any other answer', async () => {
    const r = await probe.call('GET', '/t/page', { token: operator });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(r.body).toEqual(JSON.parse(JSON.stringify(probePage)));
    expect(Number(r.headers.get('content-length'))).toBe(Buffer.byteLength(JSON.stringify(probePage)));
    const small = await probe.call('GET', '/t/read', { token: operator });
    expect(small.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const refused = await probe.call('GET', '/t/page');
    expect(refused).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    expect(refused.headers.get('content-type')).toBe('application/json; charset=utf-8');
  });

  it('answers without an ETag: nobody revalidates live state, and hashing each body cost a large page about 1.3 ms', async () => {
    const r = await probe.call('GET', '/t/read', { token: operator });
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).toBeNull();
  });

  it('answers malformed JSON with 400 VALIDATION_FAILED', async () => {
    const r = await probe.call('POST', '/t/write', { token: operator, body: '{"a":' });
    expect(r).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED', message: 'the request body is not valid JSON' } });
  });

  describe('a body is read only once its caller is authenticated for the route', () => {
    it('answers 401, not 400 or 413, to a caller without a token, whatever the body', async () => {
      for (const body of ['{"a":', JSON.stringify({ blob: 'x'.repeat(2 * 1024 * 1024) }), '{"ok":true}']) {
        const r = await probe.call('POST', '/t/write', { body });
        expect({ size: body.length, status: r.status, code: r.body.code }).toEqual({ size: body.length, status: 401, code: 'UNAUTHENTICATED' });
      }
    });

    it('answers 401 to a token that does not verify, and 403 to one without the role, before reading the body', async () => {
      const forged = await signToken(new TextEncoder().encode(randomBytes(32).toString('base64url')), { sub: 'mallory', roles: ['admin'] });
      expect((await probe.call('POST', '/t/write', { token: forged, body: '{"a":' })).status).toBe(401);
      const viewer = await signToken(secret, { sub: 'vic', roles: ['viewer'] });
      const r = await probe.call('PUT', '/t/settings', { token: viewer, body: '{"a":' });
      expect(r).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    });

    it('reads and checks the body of an authenticated caller with the role as before (400 for malformed JSON)', async () => {
      expect((await probe.call('POST', '/t/write', { token: operator, body: '{"a":' })).status).toBe(400);
      expect((await probe.call('POST', '/t/write', { token: operator, body: '{"a":1}' })).body).toEqual({ bytes: 7, sub: 'alice' });
    });
  });

  it('never echoes an internal error: the body points to the log by an id, the log has the error', async () => {
    const r = await probe.call('GET', '/t/bug', { token: operator });
    expect(r.status).toBe(500);
    expect(r.body.code).toBe('INTERNAL');
    const { errorId } = r.body.details;
    expect(errorId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.body.message).toBe(`internal error; see the service log for error id ${errorId}`);
    expect(JSON.stringify(r.body)).not.toMatch(/ECONNREFUSED|hunter2|db\.internal/);
    expect(logged.some((l) => l.includes(errorId) && l.includes('hunter2'))).toBe(true);
  });

  it('keeps the message of a typed 5xx error: it is written for the caller', async () => {
    const r = await probe.call('GET', '/t/unavailable', { token: operator });
    expect(r).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE', message: 'agent host-b did not answer: try again', retryable: true } });
  });
});

describe('starting a service', () => {
  it('refuses a route that declares no role, naming it', async () => {
    await expect(startProbeApp({ auth: { mode: 'on', secret } }, UndeclaredModule)).rejects.toThrow(/without a role.*GET \/u \(UndeclaredController\.forgotten\)/);
  });

  it('refuses guarded routes when it has no authentication settings', async () => {
    await expect(startProbeApp({})).rejects.toThrow(ConfigurationError);
  });

  it('warns at start when AUTH=off, and lets every call through as an anonymous admin', async () => {
    const logger = new Logger('probe');
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const probe = await startProbeApp({ auth: { mode: 'off' } }, undefined, logger);
    try {
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/AUTH=off.*OFF/));
      const r = await probe.call('PUT', '/t/settings');
      expect(r.status).toBe(200);
      expect((await probe.call('GET', '/t/read')).body.sub).toMatch(/anonymous/);
    } finally {
      await probe.app.close();
    }
  });
});

describe('authentication settings from the environment', () => {
  const base = { AUTH: 'on' as const, AUTH_AUDIENCE: 'flexmig' };

  it('is on by default and says what to set when nothing is configured', () => {
    expect(() => authSettingsFromEnv(base)).toThrow(ConfigurationError);
    let message = '';
    try {
      authSettingsFromEnv(base);
    } catch (e) {
      message = (e as Error).message;
    }
    for (const hint of ['AUTH_JWT_SECRET_FILE', 'npx flexmig auth init', 'AUTH_OIDC_ISSUER', 'AUTH_JWKS_URL', 'AUTH=off']) expect(message).toContain(hint);
  });

  it('reads the secret file (base64url, as flexmig auth init writes it), refusing a missing file, a short secret or other text', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-auth-'));
    const good = path.join(dir, 'jwt.secret');
    const key = randomBytes(32);
    writeFileSync(good, `${key.toString('base64url')}\n`);
    const settings = authSettingsFromEnv({ ...base, AUTH_JWT_SECRET_FILE: good });
    expect(settings).toMatchObject({ mode: 'on', secretFile: good });
    expect(Buffer.from((settings as { secret: Uint8Array }).secret).equals(key)).toBe(true); // decoded, newline ignored
    const short = path.join(dir, 'short');
    writeFileSync(short, 'too-short');
    expect(() => authSettingsFromEnv({ ...base, AUTH_JWT_SECRET_FILE: short })).toThrow(/at least 32/);
    const prose = path.join(dir, 'prose');
    writeFileSync(prose, 'correct horse battery staple, correct horse battery staple');
    expect(() => authSettingsFromEnv({ ...base, AUTH_JWT_SECRET_FILE: prose })).toThrow(/not base64url/);
    expect(() => authSettingsFromEnv({ ...base, AUTH_JWT_SECRET_FILE: path.join(dir, 'missing') })).toThrow(/cannot be read/);
  });

  it('wants the OIDC issuer and its keys URL together, with the audience', () => {
    expect(() => authSettingsFromEnv({ ...base, AUTH_OIDC_ISSUER: 'https://idp' })).toThrow(/go together/);
    expect(authSettingsFromEnv({ ...base, AUTH_OIDC_ISSUER: 'https://idp', AUTH_JWKS_URL: 'https://idp/certs', AUTH_AUDIENCE: 'fm' })).toEqual({
      mode: 'on',
      oidc: { issuer: 'https://idp', jwksUrl: 'https://idp/certs', audience: 'fm' },
    });
  });

  it('turns off only with AUTH=off', () => {
    expect(authSettingsFromEnv({ ...base, AUTH: 'off' })).toEqual({ mode: 'off' });
  });
});
