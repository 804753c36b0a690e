import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

/**
 * HTTP bearer tokens for people and tools on one machine (DESIGN.md, Trust): HS256 JWTs signed with a
 * shared secret (`jwt.secret`, read by the services through AUTH_JWT_SECRET_FILE). The verifying side
 * expects exactly these claims.
 */
export const httpRoles = ['admin', 'operator', 'viewer'] as const;
export type HttpRole = (typeof httpRoles)[number];

export const tokenIssuer = 'flexmig';
export const tokenAudience = 'flexmig';
/** A year: tokens of a single machine are rotated by rotating the secret (docs/security.md). */
export const tokenLifetimeSeconds = 365 * 24 * 3600;
/** 32 random bytes: HS256 wants a key at least as long as its 256-bit hash. */
const secretBytes = 32;

/** A new secret as base64url text (the file's content). */
export const newJwtSecret = (): string => randomBytes(secretBytes).toString('base64url');

/** The key bytes of a secret file's text (base64url; surrounding whitespace ignored). */
export const jwtSecretKey = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.trim(), 'base64url'));

export async function signHttpToken(secretText: string, role: HttpRole, now = new Date()): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ roles: [role] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(tokenIssuer)
    .setAudience(tokenAudience)
    .setSubject(role)
    .setIssuedAt(iat)
    .setExpirationTime(iat + tokenLifetimeSeconds)
    .sign(jwtSecretKey(secretText));
}
