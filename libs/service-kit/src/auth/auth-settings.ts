import { readFileSync } from 'node:fs';
import { TOKEN_AUDIENCE } from '@flexmig/contracts';
import type { HttpEnv } from '../env';
/** 32 bytes: HS256 wants a key at least as long as its hash (RFC 7518 3.2). */
export const MIN_SECRET_BYTES = 32;

/** How a service checks bearer tokens: off, a shared secret, an OIDC issuer, or both. */
export type AuthSettings =
  | { mode: 'off' }
  | {
      mode: 'on';
      /** HS256 key: the base64url text of AUTH_JWT_SECRET_FILE, decoded. */
      secret?: Uint8Array;
      secretFile?: string;
      oidc?: { issuer: string; jwksUrl: string; audience: string };
    };

/** A configuration a service cannot start with; `runMain` prints the message alone. */
export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError';
}

const whatToSet =
  'set AUTH_JWT_SECRET_FILE to a file holding the token secret (`npx flexmig auth init` writes one, and tokens for it), ' +
  'or AUTH_OIDC_ISSUER and AUTH_JWKS_URL for an OIDC issuer, ' +
  'or AUTH=off to run without authentication (a developer loop only: anyone who reaches the port is admin)';

/**
 * Reads the secret file: base64url text of the key bytes, surrounding whitespace ignored, the format
 * `flexmig auth init` writes (libs/nats-auth: jwtSecretKey), so that its tokens verify here. The error
 * says which file and why it cannot be used.
 */
export function readSecretFile(file: string): Uint8Array {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigurationError(`AUTH_JWT_SECRET_FILE ${file} cannot be read (${(e as Error).message}): ${whatToSet}`);
  }
  if (!/^[A-Za-z0-9_-]+=*$/.test(text)) {
    throw new ConfigurationError(`the secret in AUTH_JWT_SECRET_FILE ${file} is not base64url text (letters, digits, - and _): \`npx flexmig auth init\` writes one`);
  }
  const key = new Uint8Array(Buffer.from(text, 'base64url'));
  if (key.length < MIN_SECRET_BYTES) {
    throw new ConfigurationError(`the secret in AUTH_JWT_SECRET_FILE ${file} is ${key.length} bytes; it must have at least ${MIN_SECRET_BYTES} (43 base64url characters)`);
  }
  return key;
}

/**
 * The HTTP authentication the environment asks for. Secure is the default: with neither a secret file
 * nor an OIDC issuer nor AUTH=off, the service refuses to start and says what to set.
 */
export function authSettingsFromEnv(env: Pick<HttpEnv, 'AUTH' | 'AUTH_JWT_SECRET_FILE' | 'AUTH_OIDC_ISSUER' | 'AUTH_JWKS_URL' | 'AUTH_AUDIENCE'>): AuthSettings {
  if (env.AUTH === 'off') return { mode: 'off' };
  if (Boolean(env.AUTH_OIDC_ISSUER) !== Boolean(env.AUTH_JWKS_URL)) {
    throw new ConfigurationError('AUTH_OIDC_ISSUER and AUTH_JWKS_URL go together: set both (the issuer and the URL of its signing keys) or neither');
  }
  if (!env.AUTH_JWT_SECRET_FILE && !env.AUTH_OIDC_ISSUER) {
    throw new ConfigurationError(`HTTP authentication is on (the default) but has nothing to check tokens with: ${whatToSet}.`);
  }
  return {
    mode: 'on',
    ...(env.AUTH_JWT_SECRET_FILE ? { secret: readSecretFile(env.AUTH_JWT_SECRET_FILE), secretFile: env.AUTH_JWT_SECRET_FILE } : {}),
    ...(env.AUTH_OIDC_ISSUER && env.AUTH_JWKS_URL
      ? { oidc: { issuer: env.AUTH_OIDC_ISSUER, jwksUrl: env.AUTH_JWKS_URL, audience: env.AUTH_AUDIENCE ?? TOKEN_AUDIENCE } }
      : {}),
  };
}
