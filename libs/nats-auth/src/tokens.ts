import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { type RoleName, TOKEN_AUDIENCE, TOKEN_ISSUER } from '@flexmig/contracts';

/**
 * HTTP bearer tokens for people and tools on one machine (DESIGN.md, Trust): HS256 JWTs signed with a
 * shared secret (`jwt.secret`, read by the services through AUTH_JWT_SECRET_FILE). The verifying side
 * (libs/service-kit's auth guard) expects exactly these claims. The one place that mints them: the CLI,
 * and the tests' tokens.
 */
export const httpRoles = ['admin', 'operator', 'viewer'] as const satisfies readonly RoleName[];
export type HttpRole = (typeof httpRoles)[number];

/** A year: tokens of a single machine are rotated by rotating the secret (docs/security.md). */
export const tokenLifetimeSeconds = 365 * 24 * 3600;
/** 32 random bytes: HS256 wants a key at least as long as its 256-bit hash. */
const secretBytes = 32;

/** A new secret as base64url text (the file's content). */
export const newJwtSecret = (): string => randomBytes(secretBytes).toString('base64url');

/** The key bytes of a secret file's text (base64url; surrounding whitespace ignored). */
export const jwtSecretKey = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.trim(), 'base64url'));

export interface TokenClaims {
  /** Who: what every audit field records. */
  sub: string;
  /** Role names (other names grant nothing: tests use them to check that). */
  roles: readonly string[];
  /** Lifetime from now; negative for an expired token. Default an hour. */
  ttlSeconds?: number;
  now?: Date;
}

/** A token in flexmig's format: HS256, `iss` and `aud` "flexmig", `sub`, `roles`, `iat`, `exp`. */
export function signToken(key: Uint8Array, claims: TokenClaims): Promise<string> {
  const iat = Math.floor((claims.now ?? new Date()).getTime() / 1000);
  return new SignJWT({ roles: [...claims.roles] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (claims.ttlSeconds ?? 3600))
    .sign(key);
}

/** The token file of a role that `flexmig auth init` writes: `sub` is the role's name, valid a year. */
export const signHttpToken = (secretText: string, role: HttpRole, now = new Date()): Promise<string> =>
  signToken(jwtSecretKey(secretText), { sub: role, roles: [role], ttlSeconds: tokenLifetimeSeconds, now });
