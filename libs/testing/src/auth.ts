import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { type RoleName, TOKEN_AUDIENCE, TOKEN_ISSUER } from '@flexmig/contracts';

/**
 * Tokens for tests: the services the tests start check bearer tokens like any other (AUTH is on by
 * default), with a secret only the tests use. One per user, kept between runs (a file of 43 characters
 * in a directory only that user can read): Jest gives each test file fresh modules and no hook at
 * process exit, so a secret per file or per process would leave a directory behind each time.
 */
const dir = path.join(tmpdir(), `flexmig-test-auth-${userInfo().uid}`);
const secretFile = path.join(dir, 'jwt.secret');

function secretText(): string {
  if (!existsSync(secretFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // written aside, then linked into place: parallel Jest workers agree on whichever link came first
    const aside = path.join(dir, `jwt.secret.${process.pid}.${randomBytes(4).toString('hex')}`);
    writeFileSync(aside, randomBytes(32).toString('base64url'), { mode: 0o600 });
    try {
      linkSync(aside, secretFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      rmSync(aside, { force: true });
    }
  }
  return readFileSync(secretFile, 'utf8').trim();
}

/** The key the services read from the file: its base64url text decoded (service-kit's readSecretFile). */
const secretKey = () => new Uint8Array(Buffer.from(secretText(), 'base64url'));

/** The environment that makes a service check tokens with the test secret (ServiceProcess adds it). */
export function testAuthEnv(): Record<string, string> {
  secretText();
  return { AUTH_JWT_SECRET_FILE: secretFile };
}

/** The same, for a service started in-process with `startService({ auth })` (service-kit's AuthSettings). */
export function testAuthSettings(): { mode: 'on'; secret: Uint8Array; secretFile: string } {
  return { mode: 'on', secret: secretKey(), secretFile };
}

/** A token signed with the test secret: `role` (default admin) for `sub` (default `test-<role>`). */
export function testToken(role: RoleName = 'admin', sub = `test-${role}`, ttlSeconds = 6 * 3600): Promise<string> {
  return craftedToken({ sub, roles: [role], exp: Math.floor(Date.now() / 1000) + ttlSeconds });
}

let adminToken: Promise<string> | undefined;
/** The token httpJson sends unless told otherwise (admin: tests of the roles themselves say which they want). */
export const defaultTestToken = (): Promise<string> => (adminToken ??= testToken('admin', 'test'));

/**
 * A token that should be refused, or not, for tests of the checks themselves: HS256 with the test secret
 * unless `secret` says otherwise, and every claim overridable (`exp` in seconds since the epoch; null: none).
 */
export function craftedToken(claims: { sub?: string; roles?: unknown; iss?: string; aud?: string; exp?: number | null; secret?: Uint8Array } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ roles: claims.roles ?? ['admin'] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(claims.iss ?? TOKEN_ISSUER)
    .setAudience(claims.aud ?? TOKEN_AUDIENCE)
    .setSubject(claims.sub ?? 'crafted')
    .setIssuedAt(now - 60);
  if (claims.exp !== null) jwt.setExpirationTime(claims.exp ?? now + 3600);
  return jwt.sign(claims.secret ?? secretKey());
}
