import { randomBytes } from 'node:crypto';
import { ErrorCode } from '@flexmig/contracts';
import { signToken } from '@flexmig/nats-auth';
import type { AuthSettings } from './auth-settings';
import { TokenVerifier, VERIFIED_TOKEN_KEPT_MS } from './token-verifier';

const key = () => new TextEncoder().encode(randomBytes(32).toString('base64url'));

describe('TokenVerifier: a verified token is kept a while, never past its exp', () => {
  const t0 = Date.parse('2026-12-01T08:00:00Z');
  let now = t0;
  let settings: Extract<AuthSettings, { mode: 'on' }>;
  let verifier: TokenVerifier;
  const original = key();

  beforeEach(() => {
    now = t0;
    settings = { mode: 'on', secret: original };
    verifier = new TokenVerifier(settings, () => now);
  });

  it('given the same token again within the window, then it is not checked again; after the window, it is', async () => {
    const token = await signToken(original, { sub: 'alice', roles: ['operator'], now: new Date(t0) });
    await expect(verifier.verify(token)).resolves.toEqual({ sub: 'alice', roles: ['operator'] });
    // the key changes (a rotated secret): a kept token is not checked against it until its window ends
    settings.secret = key();
    now += VERIFIED_TOKEN_KEPT_MS - 1;
    await expect(verifier.verify(token)).resolves.toEqual({ sub: 'alice', roles: ['operator'] });
    now += 1;
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: ErrorCode.Unauthenticated, message: expect.stringMatching(/signature does not verify/) });
  });

  it('given a kept token that expires inside the window, then it is refused from its exp on', async () => {
    const token = await signToken(original, { sub: 'bob', roles: ['viewer'], ttlSeconds: 10, now: new Date(t0) });
    now = t0 + 5_000;
    await expect(verifier.verify(token)).resolves.toMatchObject({ sub: 'bob' });
    now = t0 + 10_000;
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: ErrorCode.Unauthenticated, message: expect.stringMatching(/expired/) });
  });

  it('given a token refused once, then it is refused again (only verified tokens are kept)', async () => {
    const forged = await signToken(key(), { sub: 'mallory', roles: ['admin'], now: new Date(t0) });
    await expect(verifier.verify(forged)).rejects.toMatchObject({ code: ErrorCode.Unauthenticated });
    await expect(verifier.verify(forged)).rejects.toMatchObject({ code: ErrorCode.Unauthenticated });
  });
});
