import { encodeAccount, encodeOperator, encodeUser, fmtCreds, newScopedSigner, type Account } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { agentTemplate, rolePermissions, type Role, type SubjectPermissions } from './permissions';

/**
 * NATS decentralized authentication, generated in Node (no `nsc`): one operator, the system account,
 * and the flexmig account whose users are the services (signed by the account key) and the agents
 * (signed by a scoped signing key whose template confines each to its own host, `{{name()}}`).
 * Facts checked on nats-server 2.9.10: ../shared/reference/nats-auth.md.
 */

/** The role name of the agents' scoped signing key in the account JWT. */
export const agentSigningRole = 'agent';
export const accountName = 'FLEXMIG';

/**
 * Without explicit limits nats-server 2.9 refuses the first connection ("maximum account active
 * connections exceeded"): -1 is unlimited. JetStream needs its own limits to be enabled for the account.
 */
const unlimited = {
  subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1,
  mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1,
} as const;

/** Seeds of the keys that sign: kept in the auth directory with mode 0600. */
export interface AuthKeys {
  operator: string;
  systemAccount: string;
  account: string;
  /** The scoped signing key that issues agent identities. */
  agentSigner: string;
}

export interface AccountState {
  /** User public key → unix seconds: JWTs of that user issued before it are refused. */
  revocations: Record<string, number>;
}

const seed = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());
const kp = (s: string) => fromSeed(new TextEncoder().encode(s));

export function newKeys(): AuthKeys {
  return { operator: seed(createOperator()), systemAccount: seed(createAccount()), account: seed(createAccount()), agentSigner: seed(createAccount()) };
}

export const publicKey = (seedText: string): string => kp(seedText).getPublicKey();

/** The account JWT: limits, the agents' scoped signing key with its template, and the revocations. */
export async function accountJwt(keys: AuthKeys, prefix: string, state: AccountState): Promise<string> {
  const t = agentTemplate(prefix);
  const account: Partial<Account> = {
    limits: unlimited,
    signing_keys: [newScopedSigner(kp(keys.agentSigner), agentSigningRole, { pub: t.pub, sub: t.sub, resp: { max: t.resp!.max, ttl: 0 } })],
    ...(Object.keys(state.revocations).length ? { revocations: state.revocations } : {}),
  };
  return encodeAccount(accountName, kp(keys.account), account, { signer: kp(keys.operator) });
}

/** The operator's and the system account's JWTs: made once and kept (auth.json), as a reload refuses a changed operator. */
export interface FixedJwts {
  operator: string;
  systemAccount: string;
}

export async function fixedJwts(keys: AuthKeys): Promise<FixedJwts> {
  return {
    operator: await encodeOperator('flexmig', kp(keys.operator), { system_account: publicKey(keys.systemAccount) }),
    systemAccount: await encodeAccount(
      'SYS',
      kp(keys.systemAccount),
      { limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } },
      { signer: kp(keys.operator) },
    ),
  };
}

/**
 * A complete nats-server configuration in operator mode with the MEMORY resolver: the operator, the
 * system account and both account JWTs preloaded. Users never appear here: a new host needs no change.
 * Only the flexmig account's JWT changes afterwards (revocations), which a reload signal applies.
 */
export async function serverConfig(keys: AuthKeys, prefix: string, state: AccountState, fixed: FixedJwts): Promise<string> {
  const appJwt = await accountJwt(keys, prefix, state);
  return [
    '# flexmig NATS server configuration (operator mode), written by `flexmig auth`. Regenerated when an',
    '# agent is revoked; apply a change with `nats-server --signal reload=<pid>` (no restart).',
    `# Subject prefix: ${prefix}. Run: nats-server -c <this file> -p <port> -js -sd <store dir>`,
    `operator: ${fixed.operator}`,
    `system_account: ${publicKey(keys.systemAccount)}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${publicKey(keys.systemAccount)}: ${fixed.systemAccount}`,
    `  ${publicKey(keys.account)}: ${appJwt}`,
    '}',
    '',
  ].join('\n');
}

/**
 * A TLS variant: includes the plain configuration and serves TLS with the generated server certificate.
 * `baseFile` is relative to this file's directory: nats-server resolves an include there, even an absolute path.
 */
export function tlsServerConfig(baseFile: string, cert: string, key: string): string {
  return [`# flexmig: nats-server with TLS (clients verify it with NATS_TLS_CA)`, `include ${JSON.stringify(baseFile)}`, 'tls {', `  cert_file: ${JSON.stringify(cert)}`, `  key_file: ${JSON.stringify(key)}`, '  timeout: 2', '}', ''].join('\n');
}

export interface IssuedUser {
  /** The credentials file's text (JWT and seed). */
  creds: string;
  publicKey: string;
}

/** A service identity (or the fleet's, or any explicit permissions: tests), signed by the account. */
export async function issueRoleUser(keys: AuthKeys, prefix: string, role: Role): Promise<IssuedUser> {
  return issueUser(keys, role, rolePermissions(role, prefix));
}

export async function issueUser(keys: AuthKeys, name: string, perms: SubjectPermissions): Promise<IssuedUser> {
  const user = createUser();
  const jwt = await encodeUser(name, user, kp(keys.account), {
    pub: perms.pub,
    sub: perms.sub,
    ...(perms.resp ? { resp: { max: perms.resp.max, ttl: 0 } } : {}),
  });
  return { creds: new TextDecoder().decode(fmtCreds(jwt, user)), publicKey: user.getPublicKey() };
}

/** An agent's identity: named after its host, signed by the scoped key (its permissions come from the template). */
export async function issueAgentUser(keys: AuthKeys, hostId: string): Promise<IssuedUser> {
  const user = createUser();
  const jwt = await signAgentJwt({ agentSigner: keys.agentSigner, accountPublicKey: publicKey(keys.account) }, hostId, user.getPublicKey());
  return { creds: agentCreds(jwt, user), publicKey: user.getPublicKey() };
}

/**
 * What signs agent identities and nothing else: the scoped signing key's seed and the account's public key.
 * The identity issuer (apps/kube) holds only this; the account's own seed, which signs the services'
 * identities (and any permissions at all), stays out of it.
 */
export interface AgentSigner {
  agentSigner: string;
  accountPublicKey: string;
}

/**
 * The user JWT of host `hostId`'s agent for a user key the agent made itself (`userPublicKey`, "U..."): its
 * seed never leaves the agent. Scoped: the server gives it the template's permissions with `{{name()}}` =
 * hostId. `expiresInSeconds` bounds its life (the server disconnects it when it expires); none by default.
 */
export async function signAgentJwt(signer: AgentSigner, hostId: string, userPublicKey: string, expiresInSeconds?: number): Promise<string> {
  return encodeUser(hostId, userPublicKey, signer.accountPublicKey, {}, { signer: kp(signer.agentSigner), scopedUser: true, ...(expiresInSeconds ? { exp: Math.floor(Date.now() / 1000) + expiresInSeconds } : {}) });
}

/** The credentials file's text of a user JWT and the key pair it names. */
export const agentCreds = (jwt: string, user: KeyPair): string => new TextDecoder().decode(fmtCreds(jwt, user));

/** A new user key pair (an agent's, before it asks the issuer to sign it). */
export const newUserKey = (): KeyPair => createUser();
