// Shared by `npm start` (stack.mjs), `npm run demo` (demo.mjs) and the benchmarks: preflight checks of
// NATS and PostgreSQL with plain advice, running the built services as child processes (through
// libs/testing/src/launcher.cjs, the launcher the tests use too), and NATS with identities (startSecureNats).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { jwtVerify } from 'jose';
import launcher from '../libs/testing/src/launcher.cjs';

const { launch, launchNode, launchService, root, sleep, stopChild } = launcher;
export { root, sleep, stopChild };
const require = createRequire(import.meta.url);
const { connect, credsAuthenticator } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const { Client } = require('pg');

export const color = (code, s) => (process.stdout.isTTY ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = (s) => color('1', s);
export const dim = (s) => color('2', s);
export const green = (s) => color('32', s);
export const red = (s) => color('31', s);
export const yellow = (s) => color('33', s);
export const cyan = (s) => color('36', s);

export class PreflightError extends Error {}

/** NATS with JetStream (unless the script runs its own: natsUrl undefined), and PostgreSQL: reachable? If not, say what to do. */
export async function preflight({ natsUrl, databaseUrl }) {
  if (natsUrl) await preflightNats(natsUrl);
  await preflightPostgres(databaseUrl);
}

async function preflightNats(natsUrl) {
  let nc;
  try {
    nc = await connect({ servers: natsUrl, timeout: 3000, maxReconnectAttempts: 0 });
  } catch (e) {
    throw new PreflightError(
      `NATS is not reachable at ${natsUrl} (${e.message}).\n` +
        `  Start it with JetStream:  nats-server -js   (Debian: apt-get install -y nats-server)\n` +
        `  or point NATS_URL at a server that runs.`,
    );
  }
  try {
    await (await jetstreamManager(nc)).getAccountInfo();
  } catch (e) {
    throw new PreflightError(`NATS at ${natsUrl} runs without JetStream (${e.message}).\n  Restart it with -js (JetStream holds flexmig's events).`);
  } finally {
    await nc.close();
  }
}

async function preflightPostgres(databaseUrl) {
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString(), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (e) {
    throw new PreflightError(
      `PostgreSQL is not reachable at ${admin.host} (${e.message}).\n` +
        `  Start it (Debian: pg_ctlcluster 15 main start, or apt-get install -y postgresql)\n` +
        `  or point DATABASE_URL at a server that runs.`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Drops and recreates a database (the demo's own, so every demo starts clean). */
export async function recreateDatabase(databaseUrl) {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

export function ensureBuilt(apps) {
  const missing = apps.filter((a) => !existsSync(path.join(root, 'dist/apps', a, 'main.js')));
  if (missing.length) throw new PreflightError(`not built: ${missing.join(', ')}. Run \`npm run build\` first.`);
}

const palette = ['36', '35', '33', '34', '32', '96', '95', '93'];

/**
 * A group of child processes (launcher.cjs `Launched`), output prefixed on the console or into log
 * files, stopped together; `onExit(name, code, signal)` hears of any that exits before stopAll().
 */
export class Processes {
  constructor({ logDir, echo }) {
    this.children = [];
    this.ports = new Map();
    this.logDir = logDir;
    this.echo = echo;
    this.stopping = false;
    this.onExit = undefined;
    if (logDir) mkdirSync(logDir, { recursive: true });
  }

  /** A built service (`dist/apps/<app>/main.js`); its `env.PORT` is where waitReady asks. */
  start(name, app, env) {
    const p = this.add(launchService(app, this.options(name, env)));
    this.ports.set(p, Number(env.PORT));
    return p;
  }

  /** Any other program (nats-server). */
  startProgram(name, command, args) {
    return this.add(launch(command, args, this.options(name, {})));
  }

  /** Any Node script (a bundled entry such as the agent's fleet.js, a benchmark's helper). */
  startNode(name, script, args, env) {
    return this.add(launchNode(script, args, this.options(name, env)));
  }

  waitReady(p, timeoutMs = 30_000) {
    return p.waitReady(this.ports.get(p), timeoutMs);
  }

  async stopAll() {
    this.stopping = true;
    await Promise.all(this.children.map((p) => p.stop()));
  }

  options(name, env) {
    const tag = color(palette[this.children.length % palette.length], name.padEnd(11));
    return {
      name,
      env,
      logFile: this.logDir ? path.join(this.logDir, `${name}.log`) : undefined,
      echo: this.echo ? (line) => process.stdout.write(`${tag} ${line}\n`) : undefined,
    };
  }

  add(p) {
    this.children.push(p);
    p.exited.then(({ code, signal }) => {
      if (!this.stopping) this.onExit?.(p.name, code, signal);
    });
    return p;
  }
}

/** Three simulated hosts of different CPU generations: the cross-generation case flexmig exists for. */
export const demoHosts = [
  { id: 'host-a', cpu: 'Westmere' },
  { id: 'host-b', cpu: 'SandyBridge' },
  { id: 'host-c', cpu: 'IvyBridge' },
];

let apiToken;
/** The bearer token `api()` sends from now on (the services check tokens: `flexmig auth init` wrote them). */
export function useApiToken(token) {
  apiToken = token;
}

const httpRoles = ['admin', 'operator', 'viewer'];
/** A token that expires within a day is made again (the CLI's last a year; the secret may have changed). */
const renewWithinSeconds = 24 * 3600;

async function stillGood(file, key) {
  if (!existsSync(file)) return false;
  try {
    const { payload } = await jwtVerify(readFileSync(file, 'utf8').trim(), key, { issuer: 'flexmig', audience: 'flexmig', algorithms: ['HS256'] });
    return payload.exp - Date.now() / 1000 > renewWithinSeconds;
  } catch {
    return false;
  }
}

/**
 * The local token files and their secret in .flexmig/auth, as `flexmig auth init` writes them (it makes
 * what is missing and keeps the rest; a token that no longer verifies with the secret, or is about to
 * expire, is removed first so that it is made again). Needs the CLI built (`npm run build`).
 * Returns `{ dir, secretFile, tokenFiles: {admin, …}, tokens: {admin, …} }`.
 */
export async function ensureAuthFiles(dir = authDir) {
  const secretFile = path.join(dir, 'jwt.secret');
  const tokenFiles = Object.fromEntries(httpRoles.map((r) => [r, path.join(dir, `${r}.token`)]));
  if (existsSync(secretFile)) {
    const key = new Uint8Array(Buffer.from(readFileSync(secretFile, 'utf8').trim(), 'base64url'));
    for (const file of Object.values(tokenFiles)) if (!(await stillGood(file, key))) rmSync(file, { force: true });
  }
  flexmigCli(['auth', 'init', '--dir', dir]);
  const tokens = Object.fromEntries(httpRoles.map((r) => [r, readFileSync(tokenFiles[r], 'utf8').trim()]));
  return { dir, secretFile, tokenFiles, tokens };
}

/**
 * The local token files (made if missing), the environment that makes a service check tokens with their
 * secret, and `api()` set to send the admin token.
 */
export async function localAuth() {
  const auth = await ensureAuthFiles();
  useApiToken(auth.tokens.admin);
  return { ...auth, env: { AUTH_JWT_SECRET_FILE: auth.secretFile } };
}

/** A clock for timing requests (ms, monotonic): `receivedMs` of api() and apiKeepAlive() is on it. */
export const clockMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * One request with fetch. The answer: its status, its body parsed (JSON, else `{raw}`), and `receivedMs`,
 * when its last byte arrived (clockMs), before the parsing: what the API took, without the client's work.
 */
export async function api(base, method, route, body) {
  const payload = body ? JSON.stringify(body) : undefined;
  const res = await fetch(`${base}${route}`, { method, headers: headersFor(payload), body: payload });
  const text = await res.text();
  return { status: res.status, receivedMs: clockMs(), body: jsonOrRaw(text) };
}

/** What api() and apiKeepAlive() send beside the body: its type when there is one, and the token set by useApiToken. */
const headersFor = (payload) => ({ ...(payload ? { 'content-type': 'application/json' } : {}), ...(apiToken ? { authorization: `Bearer ${apiToken}` } : {}) });

function jsonOrRaw(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text };
  }
}

const keepAlive = new http.Agent({ keepAlive: true });
/**
 * api() over node:http, its connections kept open: what a benchmark's load uses. On the 2-core machines
 * the benchmarks run on, their client shares the cores with the services they measure, and fetch (undici)
 * spends about three times the CPU per request (0.27 against 0.085 ms, 20,000 small POSTs 32 at a time;
 * docs/scale.md). Same answers as api(); an error to connect rejects, as fetch's does; an https base goes
 * through api().
 */
export function apiKeepAlive(base, method, route, body) {
  const url = new URL(`${base}${route}`);
  if (url.protocol !== 'http:') return api(base, method, route, body); // TLS: fetch's
  const payload = body ? JSON.stringify(body) : undefined;
  const headers = { ...headersFor(payload), ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}) };
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: keepAlive }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const receivedMs = clockMs();
        resolve({ status: res.statusCode, receivedMs, body: jsonOrRaw(Buffer.concat(chunks).toString('utf8')) });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- NATS with identities (DESIGN.md, Trust: secure is the default) ----

/** `AUTH=off` is the only way to run without identities: then the scripts use NATS_URL as it is. */
export const authOff = () => process.env.AUTH === 'off';
/** Where `npm start` and the demo keep the deployment's identities and tokens (`npx flexmig auth init`). */
export const authDir = path.join(root, '.flexmig/auth');

function flexmigCli(args) {
  return execFileSync(process.execPath, [path.join(root, 'dist/apps/cli/main.js'), ...args], { cwd: root, encoding: 'utf8' });
}

const portOpen = (port) =>
  new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * Generates what is missing in .flexmig/auth (`flexmig auth init`: never overwrites) and runs a
 * nats-server of the script's own with that configuration (JetStream, its store in .flexmig/nats/<name>,
 * its pid in .flexmig/nats/<name>.pid for `flexmig auth revoke-agent --pid`). `NATS_TLS=on` serves TLS
 * with the generated certificate. Returns the URL, the subject prefix the identities were made for, and
 * each process's environment.
 */
export async function startSecureNats(procs, { name, port }) {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new PreflightError('nats-server is not installed (Debian: apt-get install -y nats-server); or run without identities: AUTH=off with NATS_URL.');
  }
  if (await portOpen(port)) throw new PreflightError(`port ${port} is taken: set ${name === 'stack' ? 'STACK_NATS_PORT' : 'DEMO_NATS_PORT'} to a free port`);
  const init = flexmigCli(['auth', 'init', '--dir', authDir]);
  if (init.includes('wrote:')) console.log(dim(init.trimEnd()));
  const prefix = JSON.parse(readFileSync(path.join(authDir, 'auth.json'), 'utf8')).prefix;
  const tls = process.env.NATS_TLS === 'on';
  const storeDir = path.join(root, '.flexmig/nats', name);
  mkdirSync(storeDir, { recursive: true });
  const pidFile = path.join(root, '.flexmig/nats', `${name}.pid`);
  const config = path.join(authDir, tls ? 'nats-server-tls.conf' : 'nats-server.conf');
  const server = procs.startProgram('nats', 'nats-server', ['-c', config, '-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, '-P', pidFile]);
  for (let i = 0; !(await portOpen(port)); i++) {
    if (!server.running || i > 100) throw new PreflightError(`nats-server did not start on port ${port}:\n${server.tail()}`);
    await sleep(100);
  }
  const tlsEnv = tls ? { NATS_TLS_CA: path.join(authDir, 'ca.pem') } : {};
  const creds = (role) => path.join(authDir, `${role}.creds`);
  return {
    url: `nats://127.0.0.1:${port}`,
    prefix,
    pidFile,
    /** NATS_CREDS (and NATS_TLS_CA) of a service. */
    serviceEnv: (role) => ({ NATS_CREDS: creds(role), ...tlsEnv }),
    /**
     * An agent's identity and its QEMU migration certificates (QEMU_TLS_DIR: a qemu agent migrates over
     * TLS; the sim driver ignores it), issued once per host (`flexmig auth agent`) and reused after.
     */
    agentEnv: (hostId) => {
      const file = path.join(authDir, `agent-${hostId}.creds`);
      const qemuTlsDir = path.join(authDir, 'qemu-tls', hostId);
      if (!existsSync(file) || !existsSync(path.join(qemuTlsDir, 'server-cert.pem'))) flexmigCli(['auth', 'agent', hostId, '--dir', authDir]);
      return { NATS_CREDS: file, ...tlsEnv, ...(existsSync(qemuTlsDir) ? { QEMU_TLS_DIR: qemuTlsDir } : {}) };
    },
    /**
     * Connection options for the script's own NATS client, with the verifier identity: it watches the
     * migration's progress, asks a host its VMs and checks a guest's memory, and may do nothing else.
     */
    clientOptions: () => ({
      authenticator: credsAuthenticator(readFileSync(creds('verifier'))),
      inboxPrefix: '_INBOX.verifier',
      ...(tls ? { tls: { caFile: tlsEnv.NATS_TLS_CA } } : {}),
    }),
  };
}

/** Without identities (AUTH=off): the NATS of NATS_URL, checked first, and nothing added to any environment. */
export async function plainNats(natsUrl) {
  await preflightNats(natsUrl);
  return { url: natsUrl, prefix: undefined, serviceEnv: () => ({}), agentEnv: () => ({}), clientOptions: () => ({}) };
}
