import { SignJWT } from 'jose';
import { type RoleName, TOKEN_AUDIENCE, TOKEN_ISSUER } from '@flexmig/contracts';

/**
 * A token in flexmig's own format (HS256, `iss` and `aud` "flexmig", `sub`, `roles`, `exp`): what
 * `flexmig auth init` and scripts/auth-files.mjs write, here for this library's specs and tools in TypeScript.
 */
export function signToken(secret: Uint8Array, claims: { sub: string; roles: RoleName[] | string[]; ttlSeconds?: number }): Promise<string> {
  return new SignJWT({ roles: claims.roles })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (claims.ttlSeconds ?? 3600))
    .sign(secret);
}
