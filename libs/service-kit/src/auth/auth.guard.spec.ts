import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { signToken } from '@flexmig/nats-auth';
import { type ProbeApp, startProbeApp } from './test-helpers';
import type { AuthSettings } from './auth-settings';

const secret = new TextEncoder().encode(randomBytes(32).toString('base64url'));
const hs: AuthSettings = { mode: 'on', secret };

describe('bearer tokens with the shared secret (HS256)', () => {
  let probe: ProbeApp;
  beforeAll(async () => {
    probe = await startProbeApp({ auth: hs });
  });
  afterAll(() => probe.app.close());

  const as = (roles: string[], sub = 'alice') => signToken(secret, { sub, roles });

  it('answers a route its role allows, with the caller from the token', async () => {
    const r = await probe.call('GET', '/t/read', { token: await as(['viewer']) });
    expect(r).toMatchObject({ status: 200, body: { sub: 'alice', roles: ['viewer'] } });
  });

  it('orders the roles: admin may do what an operator may, an operator what a viewer may', async () => {
    expect((await probe.call('GET', '/t/read', { token: await as(['admin']) })).status).toBe(200);
    expect((await probe.call('POST', '/t/write', { token: await as(['operator']), body: '{}' })).status).toBe(201);
    expect((await probe.call('PUT', '/t/settings', { token: await as(['admin']) })).status).toBe(200);
    // unknown role names grant nothing
    expect((await probe.call('GET', '/t/read', { token: await as(['root', 'superuser']) })).status).toBe(403);
  });

  it('401 with a Bearer challenge and the one error shape without a valid token', async () => {
    const none = await probe.call('GET', '/t/read');
    expect(none).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="flexmig"');
    const expired = await signToken(secret, { sub: 'alice', roles: ['admin'], ttlSeconds: -60 });
    const other = await signToken(randomBytes(32), { sub: 'alice', roles: ['admin'] });
    for (const token of ['garbage', expired, other]) {
      const r = await probe.call('GET', '/t/read', { token });
      expect([r.status, r.body.code]).toEqual([401, 'UNAUTHENTICATED']);
    }
    expect((await probe.call('GET', '/t/read', { token: expired })).body.message).toMatch(/expired/);
  });

  it('403 FORBIDDEN naming the role needed and the roles held', async () => {
    const r = await probe.call('PUT', '/t/settings', { token: await as(['operator']) });
    expect(r).toMatchObject({ status: 403, body: { code: 'FORBIDDEN', details: { required: 'admin', roles: ['operator'] } } });
    expect(r.body.message).toMatch(/admin role.*alice has operator/);
  });

  it('leaves public routes open', async () => {
    expect((await probe.call('GET', '/t/open')).status).toBe(200);
  });
});

describe('bearer tokens from an OIDC issuer (JWKS served on loopback)', () => {
  const issuer = 'https://idp.example.test/realms/flexmig';
  let jwks: Server;
  let probe: ProbeApp;
  const keys: Record<string, { privateKey: CryptoKey; jwk?: JWK }> = {};

  const mint = (alg: 'RS256' | 'ES256', claims: { iss?: string; aud?: string; kid?: string } = {}) =>
    new SignJWT({ roles: ['operator'] })
      .setProtectedHeader({ alg, kid: claims.kid ?? alg })
      .setIssuer(claims.iss ?? issuer)
      .setAudience(claims.aud ?? 'flexmig')
      .setSubject(`oidc-${alg}`)
      .setExpirationTime('10m')
      .sign(keys[claims.kid ?? alg].privateKey);

  beforeAll(async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const { privateKey, publicKey } = await generateKeyPair(alg);
      keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: alg, alg, use: 'sig' } };
    }
    // a key the issuer does not publish
    keys.rogue = { privateKey: (await generateKeyPair('RS256')).privateKey };
    jwks = createServer((_, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [keys.RS256.jwk, keys.ES256.jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/certs`;
    probe = await startProbeApp({ auth: { mode: 'on', oidc: { issuer, jwksUrl, audience: 'flexmig' }, secret } });
  });
  afterAll(async () => {
    await probe.app.close();
    await new Promise((resolve) => jwks.close(resolve));
  });

  it.each(['RS256', 'ES256'] as const)('accepts an %s token of the issuer', async (alg) => {
    const r = await probe.call('POST', '/t/write', { token: await mint(alg), body: '{"a":1}' });
    expect(r).toMatchObject({ status: 201, body: { sub: `oidc-${alg}` } });
  });

  it('refuses a token of another issuer or audience, or signed with a key the issuer does not publish', async () => {
    for (const token of [await mint('RS256', { iss: 'https://evil.example.test' }), await mint('ES256', { aud: 'another-app' }), await mint('RS256', { kid: 'rogue' })]) {
      const r = await probe.call('GET', '/t/read', { token });
      expect([r.status, r.body.code]).toEqual([401, 'UNAUTHENTICATED']);
    }
    expect((await probe.call('GET', '/t/read', { token: await mint('RS256', { iss: 'https://evil.example.test' }) })).body.message).toMatch(/"iss"/);
  });

  it('still accepts the shared-secret tokens when both are configured', async () => {
    expect((await probe.call('GET', '/t/read', { token: await signToken(secret, { sub: 'cli', roles: ['viewer'] }) })).status).toBe(200);
  });

  it('answers 503 UNAVAILABLE, not 401, when the issuer keys cannot be fetched', async () => {
    const down = await startProbeApp({ auth: { mode: 'on', oidc: { issuer, jwksUrl: 'http://127.0.0.1:9/certs', audience: 'flexmig' } } });
    try {
      const r = await down.call('GET', '/t/read', { token: await mint('RS256') });
      expect([r.status, r.body.code]).toEqual([503, 'UNAVAILABLE']);
      // and an HS256 token is refused when no secret is configured (no algorithm confusion)
      const hsToken = await signToken(secret, { sub: 'x', roles: ['admin'] });
      expect((await down.call('GET', '/t/read', { token: hsToken })).status).toBe(401);
    } finally {
      await down.app.close();
    }
  });
});
