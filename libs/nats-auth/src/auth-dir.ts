import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HostIdSchema } from '@flexmig/contracts';
import { CaFiles, issueCertificate, makeCa, writeQemuTlsDir } from './certificates';
import { AuthKeys, fixedJwts, FixedJwts, issueAgentUser, issueRoleUser, issueUser, newKeys, publicKey, serverConfig, tlsServerConfig } from './issue';
import { reservedIdentityNames, rolePermissions, serviceRoles, type Role, type SubjectPermissions } from './permissions';
import { httpRoles, newJwtSecret, signHttpToken } from './tokens';

/**
 * The auth directory (`.flexmig/auth` by default): everything a single-machine deployment needs to run
 * with identities on. Secrets are written with mode 0600. `flexmig auth` (apps/cli), `npm start`, the
 * demo and the tests all go through here.
 */
export const defaultAuthDir = '.flexmig/auth';

export const authFiles = {
  state: 'auth.json',
  serverConfig: 'nats-server.conf',
  tlsServerConfig: 'nats-server-tls.conf',
  /** The deployment's CA: it signs the NATS server's certificate and each host's QEMU migration certificates. */
  caCert: 'ca.pem',
  caKey: 'ca.key',
  serverCert: 'nats-server-cert.pem',
  serverKey: 'nats-server-key.pem',
  jwtSecret: 'jwt.secret',
  keys: { operator: 'operator.nk', systemAccount: 'system-account.nk', account: 'account.nk', agentSigner: 'account-signing.nk' } satisfies Record<keyof AuthKeys, string>,
  creds: (name: string) => `${name}.creds`,
  agentCreds: (hostId: string) => `agent-${hostId}.creds`,
  /** A host's QEMU_TLS_DIR (tls-creds-x509 layout), written by `flexmig auth agent`. */
  qemuTlsDir: (hostId: string) => path.join('qemu-tls', hostId),
  token: (role: string) => `${role}.token`,
} as const;

/** Not secret: which prefix the permissions were built for, and which user keys each agent was issued (for revocation). */
interface AuthState {
  prefix: string;
  accountPublicKey: string;
  /** Kept so that a rewritten configuration differs only in the account JWT (a reload refuses a changed operator). */
  fixed: FixedJwts;
  agents: Record<string, string[]>;
  revocations: Record<string, number>;
}

export interface InitOptions {
  /** The deployment's subject prefix (SUBJECT_PREFIX): the permissions name its subjects. */
  prefix?: string;
  /** Overwrite existing files (new keys: every identity issued before stops working). */
  force?: boolean;
  /** Also generate a TLS server certificate (needs the openssl command). Default true. */
  tls?: boolean;
}

export interface InitResult {
  dir: string;
  written: string[];
  kept: string[];
  prefix: string;
}

const secret = 0o600;

function write(dir: string, file: string, content: string, mode = 0o644): void {
  const full = path.join(dir, file);
  writeFileSync(full, content, { mode });
  chmodSync(full, mode); // writeFileSync's mode applies only to a new file
}

function readState(dir: string): AuthState {
  const file = path.join(dir, authFiles.state);
  if (!existsSync(file)) throw new Error(`${dir} is not a flexmig auth directory (no ${authFiles.state}): run \`flexmig auth init --dir ${dir}\` first`);
  return JSON.parse(readFileSync(file, 'utf8')) as AuthState;
}

function writeState(dir: string, state: AuthState): void {
  write(dir, authFiles.state, `${JSON.stringify(state, null, 2)}\n`);
}

function readKeys(dir: string): AuthKeys {
  const entries = Object.entries(authFiles.keys).map(([k, f]) => [k, readFileSync(path.join(dir, f), 'utf8').trim()]);
  return Object.fromEntries(entries) as AuthKeys;
}

/**
 * `flexmig auth init`: writes what is missing (everything with `force`). Refuses to mix: when the
 * signing keys are missing but identities signed by other keys are present, it asks for --force.
 */
export async function initAuthDir(dir: string, opts: InitOptions = {}): Promise<InitResult> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const result: InitResult = { dir, written: [], kept: [], prefix: '' };
  const has = (f: string) => !opts.force && existsSync(path.join(dir, f));
  const keyFiles = Object.values(authFiles.keys);
  const present = keyFiles.filter(has);
  if (present.length > 0 && present.length < keyFiles.length) {
    throw new Error(`${dir} holds some signing keys (${present.join(', ')}) but not all: restore them, or start over with --force`);
  }
  const freshKeys = present.length === 0;
  const dependent = [authFiles.state, authFiles.serverConfig, ...serviceRoles.map(authFiles.creds)].filter(has);
  if (freshKeys && dependent.length) {
    throw new Error(`${dir} has ${dependent.join(', ')} but not the keys that signed them: start over with --force`);
  }
  const keys = freshKeys ? newKeys() : readKeys(dir);
  if (freshKeys) {
    for (const [k, f] of Object.entries(authFiles.keys)) write(dir, f, `${keys[k as keyof AuthKeys]}\n`, secret);
    result.written.push(...keyFiles);
  } else result.kept.push(...keyFiles);

  const state: AuthState = has(authFiles.state)
    ? readState(dir)
    : { prefix: opts.prefix ?? 'flexmig', accountPublicKey: publicKey(keys.account), fixed: await fixedJwts(keys), agents: {}, revocations: {} };
  if (opts.prefix && opts.prefix !== state.prefix) {
    throw new Error(`${dir} was made for the subject prefix ${state.prefix}, not ${opts.prefix}: use another --dir, or --force`);
  }
  result.prefix = state.prefix;
  const step = async (file: string, make: () => Promise<string> | string, mode = secret) => {
    if (has(file)) {
      result.kept.push(file);
      return;
    }
    write(dir, file, await make(), mode);
    result.written.push(file);
  };
  await step(authFiles.state, () => `${JSON.stringify(state, null, 2)}\n`, 0o644);
  await step(authFiles.serverConfig, () => serverConfig(keys, state.prefix, state, state.fixed), 0o644);
  for (const role of serviceRoles) {
    const file = authFiles.creds(role);
    // a service's permissions are in its creds: after an upgrade that changed them (a new subject it may
    // send, say), the kept file would be refused by the server, so it is issued again with the same keys
    if (has(file) && !credsGrant(readFileSync(path.join(dir, file), 'utf8'), rolePermissions(role, state.prefix))) {
      write(dir, file, (await issueRoleUser(keys, state.prefix, role)).creds, secret);
      result.written.push(`${file} (its permissions changed)`);
      continue;
    }
    await step(file, async () => (await issueRoleUser(keys, state.prefix, role)).creds);
  }
  await step(authFiles.jwtSecret, () => `${newJwtSecret()}\n`);
  const jwtSecret = readFileSync(path.join(dir, authFiles.jwtSecret), 'utf8');
  for (const role of httpRoles) await step(authFiles.token(role), async () => `${await signHttpToken(jwtSecret, role)}\n`);
  if (opts.tls !== false) await tlsFiles(dir, has, result);
  return result;
}

/** The deployment's CA and a NATS server certificate for 127.0.0.1/localhost, with openssl. */
async function tlsFiles(dir: string, has: (f: string) => boolean, result: InitResult): Promise<void> {
  const f = authFiles;
  if ([f.caCert, f.caKey, f.serverCert, f.serverKey, f.tlsServerConfig].every(has)) {
    result.kept.push(f.caCert, f.serverCert, f.tlsServerConfig);
    return;
  }
  const at = (name: string) => path.join(dir, name);
  try {
    const ca = makeCa({ cert: at(f.caCert), key: at(f.caKey) }, 'flexmig deployment CA');
    issueCertificate({ ca, cert: at(f.serverCert), key: at(f.serverKey), commonName: 'localhost', names: ['localhost', '127.0.0.1'], usage: ['server'] });
  } catch (e) {
    result.kept.push(`(no TLS certificates: ${(e as Error).message})`);
    return;
  }
  write(dir, f.tlsServerConfig, tlsServerConfig(f.serverConfig, at(f.serverCert), at(f.serverKey)));
  result.written.push(f.caCert, f.caKey, f.serverCert, f.serverKey, f.tlsServerConfig);
}

/** The deployment's CA of `dir`, when `auth init` made one. */
function deploymentCa(dir: string): CaFiles | undefined {
  const ca = { cert: path.join(dir, authFiles.caCert), key: path.join(dir, authFiles.caKey) };
  return existsSync(ca.cert) && existsSync(ca.key) ? ca : undefined;
}

/** The names a host's migration certificate is valid for when none are given: a single machine's loopback. */
export const defaultMigrationNames = ['127.0.0.1', 'localhost'];

export interface IssuedAgent {
  creds: string;
  /** The host's QEMU_TLS_DIR; absent when the directory has no CA (`auth init --no-tls`). */
  qemuTlsDir?: string;
}

/**
 * `flexmig auth agent <hostId>`: a new identity for one host (the server needs no change), and the host's
 * QEMU migration certificates (its QEMU_TLS_DIR), valid for `migrationNames`: the addresses other hosts'
 * QEMUs connect to when this host is a migration target (default: loopback).
 */
export async function issueAgent(dir: string, hostId: string, migrationNames: string[] = defaultMigrationNames): Promise<IssuedAgent> {
  const id = HostIdSchema.parse(hostId);
  if (reservedIdentityNames.includes(id)) throw new Error(`${id} names a service identity: a host may not have that id`);
  const state = readState(dir);
  const user = await issueAgentUser(readKeys(dir), id);
  state.agents[id] = [...(state.agents[id] ?? []), user.publicKey];
  writeState(dir, state);
  const file = authFiles.agentCreds(id);
  write(dir, file, user.creds, secret);
  const ca = deploymentCa(dir);
  const creds = path.join(dir, file);
  if (!ca) return { creds };
  return { creds, qemuTlsDir: writeQemuTlsDir(path.join(dir, authFiles.qemuTlsDir(id)), ca, id, migrationNames) };
}

/** An identity of a role (the sim fleet's, `fleet`): written as `<role>.creds`. */
export async function issueRole(dir: string, role: Role): Promise<string> {
  const state = readState(dir);
  const user = await issueRoleUser(readKeys(dir), state.prefix, role);
  write(dir, authFiles.creds(role), user.creds, secret);
  return path.join(dir, authFiles.creds(role));
}

/**
 * An identity with explicit permissions, written as `<name>.creds` (tests: an observer that may look
 * everywhere, or an identity shaped like an attacker's). Not a command: production identities are roles.
 */
export async function issueNamedUser(dir: string, name: string, perms: SubjectPermissions): Promise<string> {
  const user = await issueUser(readKeys(dir), name, perms);
  write(dir, authFiles.creds(name), user.creds, secret);
  return path.join(dir, authFiles.creds(name));
}

export interface RevokeResult {
  revokedKeys: string[];
  serverConfig: string;
}

/**
 * `flexmig auth revoke-agent <hostId>`: every identity issued to the host goes into the account's
 * revocations and the server configuration is rewritten; the running server applies it on a reload
 * signal. The host's creds file is removed.
 */
export async function revokeAgent(dir: string, hostId: string, now = new Date()): Promise<RevokeResult> {
  const id = HostIdSchema.parse(hostId);
  const state = readState(dir);
  const keys = state.agents[id] ?? [];
  if (keys.length === 0) throw new Error(`no identity was issued to host ${id} from ${dir}`);
  const at = Math.floor(now.getTime() / 1000);
  for (const k of keys) state.revocations[k] = at;
  delete state.agents[id];
  writeState(dir, state);
  write(dir, authFiles.serverConfig, await serverConfig(readKeys(dir), state.prefix, state, state.fixed));
  rmSync(path.join(dir, authFiles.agentCreds(id)), { force: true });
  rmSync(path.join(dir, authFiles.qemuTlsDir(id)), { recursive: true, force: true });
  return { revokedKeys: keys, serverConfig: path.join(dir, authFiles.serverConfig) };
}

/** The prefix an auth directory's permissions were made for. */
export const authDirPrefix = (dir: string): string => readState(dir).prefix;

/**
 * Whether a creds file grants exactly these publish and subscribe permissions (order aside). Its user JWT's
 * claims are read without checking the signature: the question is only whether it is out of date.
 */
export function credsGrant(creds: string, perms: SubjectPermissions): boolean {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([^\s-][^\s]*)\s*-+END NATS USER JWT/.exec(creds)?.[1];
  if (!jwt) return false;
  try {
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { nats?: { pub?: { allow?: string[] }; sub?: { allow?: string[] } } };
    const same = (a: string[] | undefined, b: string[]) => JSON.stringify([...(a ?? [])].sort()) === JSON.stringify([...b].sort());
    return same(claims.nats?.pub?.allow, perms.pub.allow) && same(claims.nats?.sub?.allow, perms.sub.allow);
  } catch {
    return false;
  }
}
