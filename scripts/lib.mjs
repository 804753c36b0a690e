// Shared by `npm start` (stack.mjs), `npm run demo` (demo.mjs) and the benchmarks: preflight checks of
// NATS and PostgreSQL with plain advice, and running the built services as child processes (through
// libs/testing/src/launcher.cjs, the launcher the tests use too).
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import launcher from '../libs/testing/src/launcher.cjs';
import { ensureAuthFiles } from './auth-files.mjs';

const { launchNode, launchService, root, sleep, stopChild } = launcher;
export { root, sleep, stopChild };
const require = createRequire(import.meta.url);
const { connect } = require('@nats-io/transport-node');
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

/** NATS with JetStream, and PostgreSQL: reachable? If not, say what to do. */
export async function preflight({ natsUrl, databaseUrl }) {
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
/** The bearer token `api()` sends from now on (the services check tokens: scripts/auth-files.mjs). */
export function useApiToken(token) {
  apiToken = token;
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

export async function api(base, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(apiToken ? { authorization: `Bearer ${apiToken}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, body: json };
}
