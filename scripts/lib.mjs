// Shared by `npm start` (stack.mjs) and `npm run demo` (demo.mjs): preflight checks of NATS and
// PostgreSQL with plain advice, and running the built services as child processes.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
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

/** SIGTERM, then SIGKILL if the process has not exited within `graceMs`; resolves once it has. */
export function stopChild(child, graceMs = 5000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const palette = ['36', '35', '33', '34', '32', '96', '95', '93'];

/** The built services as child processes; output prefixed on the console, or into log files. */
export class Processes {
  constructor({ logDir, echo }) {
    this.children = [];
    this.logDir = logDir;
    this.echo = echo;
    this.stopping = false;
    this.onExit = undefined;
    if (logDir) mkdirSync(logDir, { recursive: true });
  }

  start(name, app, env) {
    const child = spawn(process.execPath, ['--enable-source-maps', path.join(root, 'dist/apps', app, 'main.js')], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tag = color(palette[this.children.length % palette.length], name.padEnd(11));
    const log = this.logDir ? createWriteStream(path.join(this.logDir, `${name}.log`)) : undefined;
    const out = (chunk) => {
      log?.write(chunk);
      if (this.echo) for (const line of chunk.toString().split('\n')) if (line.trim()) process.stdout.write(`${tag} ${line}\n`);
    };
    child.stdout.on('data', out);
    child.stderr.on('data', out);
    child.on('exit', (code, signal) => {
      log?.end();
      if (!this.stopping) this.onExit?.(name, code, signal);
    });
    const entry = { name, child, port: Number(env.PORT), log: this.logDir ? path.join(this.logDir, `${name}.log`) : undefined };
    this.children.push(entry);
    return entry;
  }

  async waitReady(entry, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (entry.child.exitCode !== null) throw new Error(`${entry.name} exited with code ${entry.child.exitCode}${entry.log ? ` (log: ${entry.log})` : ''}`);
      const ok = await fetch(`http://127.0.0.1:${entry.port}/health/ready`).then((r) => r.ok, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${entry.name} was not ready within ${timeoutMs} ms${entry.log ? ` (log: ${entry.log})` : ''}`);
  }

  async stopAll() {
    this.stopping = true;
    await Promise.all(this.children.map(({ child }) => stopChild(child)));
  }
}

/** Three simulated hosts of different CPU generations: the cross-generation case flexmig exists for. */
export const demoHosts = [
  { id: 'host-a', cpu: 'Westmere' },
  { id: 'host-b', cpu: 'SandyBridge' },
  { id: 'host-c', cpu: 'IvyBridge' },
];

export async function api(base, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
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
