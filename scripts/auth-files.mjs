#!/usr/bin/env node
// The local bearer-token files of `npm start`, `npm run demo` and the benchmarks, in .flexmig/auth/:
//   jwt.secret                          the HS256 secret the services read (AUTH_JWT_SECRET_FILE)
//   admin.token operator.token viewer.token   a token of each role (HS256, iss/aud "flexmig", sub, roles, exp)
// The same files and format as `npx flexmig auth init` (apps/cli) writes: whichever runs first makes them and
// the other keeps them. A token that no longer verifies with the secret, or expires within a day, is
// minted again. Run directly (`node scripts/auth-files.mjs`) to make them and print where they are.
// Plain JavaScript on purpose: the scripts run before (and without) a build.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { jwtVerify, SignJWT } from 'jose';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const authDir = path.join(root, '.flexmig/auth');
export const roles = ['admin', 'operator', 'viewer'];
/** A local token lives 30 days; `npm start` renews it before its last day. */
const tokenTtlSeconds = 30 * 24 * 3600;
const renewWithinSeconds = 24 * 3600;
const claims = { issuer: 'flexmig', audience: 'flexmig' };

async function stillGood(file, secret) {
  if (!existsSync(file)) return false;
  try {
    const { payload } = await jwtVerify(readFileSync(file, 'utf8').trim(), secret, { ...claims, algorithms: ['HS256'] });
    return payload.exp - Date.now() / 1000 > renewWithinSeconds;
  } catch {
    return false;
  }
}

/**
 * Makes what is missing (or stale) and returns the paths and the tokens:
 * `{ dir, secretFile, tokenFiles: {admin, …}, tokens: {admin, …} }`.
 */
export async function ensureAuthFiles(dir = authDir) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secretFile = path.join(dir, 'jwt.secret');
  if (!existsSync(secretFile)) writeFileSync(secretFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  // the file holds the key as base64url text; the key is its bytes (as the services and the CLI read it)
  const secret = new Uint8Array(Buffer.from(readFileSync(secretFile, 'utf8').trim(), 'base64url'));
  const tokenFiles = {};
  const tokens = {};
  for (const role of roles) {
    const file = (tokenFiles[role] = path.join(dir, `${role}.token`));
    if (!(await stillGood(file, secret))) {
      const token = await new SignJWT({ roles: [role] })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setIssuer(claims.issuer)
        .setAudience(claims.audience)
        .setSubject(role)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + tokenTtlSeconds)
        .sign(secret);
      writeFileSync(file, `${token}\n`, { mode: 0o600 });
    }
    tokens[role] = readFileSync(file, 'utf8').trim();
  }
  return { dir, secretFile, tokenFiles, tokens };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { secretFile, tokenFiles } = await ensureAuthFiles();
  console.log(`secret: ${path.relative(process.cwd(), secretFile)}`);
  for (const role of roles) console.log(`${role} token: ${path.relative(process.cwd(), tokenFiles[role])}`);
}
