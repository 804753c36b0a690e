import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { ErrorCode, FlexmigError, ROLES, TOKEN_AUDIENCE, TOKEN_ISSUER } from '@flexmig/contracts';
import type { AuthSettings } from './auth-settings';

/** Who calls, from a verified token: `sub` for audit fields, the known roles it holds. */
export interface Principal {
  sub: string;
  roles: string[];
}

/** Signatures an OIDC issuer may use; never HS*, whose key would be the (public) JWKS itself. */
const asymmetric = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const refused = (why: string, reason: string) => new FlexmigError(ErrorCode.Unauthenticated, `the bearer token is refused: ${why}`, { reason });

/** How long a verified token is taken as verified again without checking its signature (and never past its `exp`). */
export const VERIFIED_TOKEN_KEPT_MS = 30_000;
/** The most verified tokens kept (the least recently used goes first). */
const verifiedTokensKept = 1_000;

/**
 * Checks bearer tokens (JWT) with `jose`: HS256 with the shared secret (`iss` and `aud` "flexmig"), or
 * an OIDC issuer's keys (its `iss`, `aud` AUTH_AUDIENCE). Both may be configured: the token's algorithm
 * says which applies. `exp` and `sub` are required; `roles` is an array of role names.
 *
 * A token that verified is taken as verified for VERIFIED_TOKEN_KEPT_MS, never past its `exp` (the
 * newest 1,000): a client sends the same token with every request, and checking its signature each time
 * was 5 % of inventory's CPU while VMs were created (bench/scale profile). The price: a key withdrawn
 * from the issuer's JWKS stops tokens it signed up to 30 s later.
 */
export class TokenVerifier {
  private readonly jwks?: JWTVerifyGetKey;
  private readonly verified = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly settings: Extract<AuthSettings, { mode: 'on' }>,
    private readonly now: () => number = Date.now,
  ) {
    // fetched on first use, cached, refetched when a token names a key id it does not know (rotation)
    if (settings.oidc) this.jwks = createRemoteJWKSet(new URL(settings.oidc.jwksUrl));
  }

  async verify(token: string): Promise<Principal> {
    const now = this.now();
    const known = this.verified.get(token);
    if (known) {
      this.verified.delete(token);
      if (known.until > now) {
        this.verified.set(token, known); // the most recently used last
        return known.principal;
      }
    }
    const { principal, exp } = await this.check(token, now);
    this.verified.set(token, { principal, until: Math.min(now + VERIFIED_TOKEN_KEPT_MS, exp * 1000) });
    while (this.verified.size > verifiedTokensKept) this.verified.delete(this.verified.keys().next().value!);
    return principal;
  }

  private async check(token: string, now: number): Promise<{ principal: Principal; exp: number }> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw refused('it is not a JWT', 'malformed');
    }
    try {
      const common = { requiredClaims: ['exp', 'sub'], currentDate: new Date(now) };
      const { payload } =
        alg === 'HS256' && this.settings.secret
          ? await jwtVerify(token, this.settings.secret, { ...common, algorithms: ['HS256'], issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE })
          : this.jwks && this.settings.oidc
            ? await jwtVerify(token, this.jwks, { ...common, algorithms: asymmetric, issuer: this.settings.oidc.issuer, audience: this.settings.oidc.audience })
            : failAlgorithm(alg);
      // who is recorded in audit fields: an empty subject would record no one
      if (typeof payload.sub !== 'string' || !payload.sub.trim()) throw refused('its "sub" claim is empty', 'ERR_JWT_CLAIM_VALIDATION_FAILED');
      const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string' && (ROLES as readonly string[]).includes(r)) : [];
      return { principal: { sub: payload.sub, roles }, exp: payload.exp! };
    } catch (e) {
      if (e instanceof FlexmigError) throw e;
      // the issuer's keys could not be fetched: not the caller's fault, and worth retrying
      if (e instanceof errors.JWKSTimeout || e instanceof errors.JWKSInvalid || !(e instanceof errors.JOSEError)) {
        throw new FlexmigError(ErrorCode.Unavailable, 'the signing keys of the OIDC issuer cannot be fetched (AUTH_JWKS_URL); try again', { reason: 'jwks-unavailable' });
      }
      if (e instanceof errors.JWTExpired) throw refused('it has expired', e.code);
      if (e instanceof errors.JWTClaimValidationFailed) throw refused(`its "${e.claim}" claim ${e.reason === 'missing' ? 'is missing' : 'is not what this service accepts'}`, e.code);
      if (e instanceof errors.JWKSNoMatchingKey) throw refused('no key of the issuer matches its key id', e.code);
      if (e instanceof errors.JWSSignatureVerificationFailed) throw refused('its signature does not verify', e.code);
      throw refused(e.message, e.code);
    }
  }
}

function failAlgorithm(alg: string | undefined): never {
  throw refused(`this service does not accept tokens signed with ${alg ?? 'no algorithm'}`, 'algorithm');
}

const bearer = /^Bearer[ \t]+([A-Za-z0-9._~+/-]+=*)[ \t]*$/i;

/** The token of an `authorization: Bearer <token>` header; undefined for anything else. */
export const bearerToken = (header: string | string[] | undefined): string | undefined => (typeof header === 'string' ? bearer.exec(header)?.[1] : undefined);
