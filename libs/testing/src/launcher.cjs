'use strict';
// The one way flexmig runs a child process: the built services (`node dist/apps/<app>/main.js`) and
// any other program (nats-server, QEMU, a helper script), for the tests (libs/testing), `npm start` /
// `npm run demo` (scripts/lib.mjs) and the benchmarks (bench/*). CommonJS with a .d.cts beside it: the
// plain-Node scripts import it without a build step, and Jest (CommonJS) and TypeScript can require it.
const { spawn } = require('node:child_process');
const { createWriteStream, existsSync, mkdirSync } = require('node:fs');
const net = require('node:net');
const path = require('node:path');
// Node's own promise timer as `sleep`: plain scripts cannot import the TypeScript code's one helper
// (@flexmig/timing), and writing a second copy here is what this file exists to avoid.
const { setTimeout: sleep } = require('node:timers/promises');

const root = path.resolve(__dirname, '../../..');
/** Lines of output kept in memory per process (older ones are dropped): enough for a failure's tail. */
const keptLines = 2000;
/** How often a starting service's /health/ready is asked. */
const readyPollMs = 100;
/**
 * FLEXMIG_TEST_LOG_DIR: every child without a log file of its own writes its whole output to
 * `<dir>/<name>-<pid>.log` (a flaky fault row or test is read from these; the memory keeps only a tail).
 */
const logDirFromEnv = () => process.env.FLEXMIG_TEST_LOG_DIR || undefined;

/** A free TCP port on loopback. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The bundled entry of an app (`main`, or another entry such as the agent's `fleet`); throws if it is not built. */
function appEntry(app, entry = 'main') {
  const file = path.join(root, 'dist/apps', app, `${entry}.js`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  return file;
}

/** SIGTERM, then SIGKILL if the process has not exited within `graceMs`; resolves once it has. */
function stopChild(child, graceMs = 5000) {
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

/** A running child process: its output (kept in memory, and optionally in a log file and echoed), readiness, stop. */
class Launched {
  constructor(command, args, { name = path.basename(command), env = {}, cwd = root, logFile, echo } = {}) {
    this.name = name;
    this.logFile = logFile;
    this.output = [];
    this.child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.child.pid;
    const dir = logFile ? undefined : logDirFromEnv();
    if (dir) {
      mkdirSync(dir, { recursive: true });
      this.logFile = logFile = path.join(dir, `${name.replace(/[^\w.-]+/g, '_')}-${this.pid ?? 'unstarted'}.log`);
    }
    const log = logFile ? createWriteStream(logFile) : undefined;
    const collect = (chunk) => {
      log?.write(chunk);
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        this.output.push(line);
        echo?.(line);
      }
      if (this.output.length > keptLines) this.output.splice(0, this.output.length - keptLines);
    };
    this.child.stdout.on('data', collect);
    this.child.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        log?.end();
        resolve({ code, signal });
      });
      // a program that cannot be started (not installed) ends here rather than as an unhandled 'error'
      this.child.once('error', (e) => {
        this.output.push(`${command}: ${e.message}`);
        if (this.pid === undefined) resolve({ code: null, signal: null });
      });
    });
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  tail(lines = 30) {
    return this.output.slice(-lines).join('\n');
  }

  /** Polls http://127.0.0.1:<port>/health/ready; fails at once (with the output's tail) if the process exits first. */
  async waitReady(port, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    const where = () => (this.logFile ? ` (log: ${this.logFile})` : `:\n${this.tail()}`);
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited with code ${this.child.exitCode}${where()}`);
      if (await fetch(`http://127.0.0.1:${port}/health/ready`).then((r) => r.ok, () => false)) return this;
      await sleep(readyPollMs);
    }
    throw new Error(`${this.name} was not ready on port ${port} within ${timeoutMs} ms${where()}`);
  }

  /** SIGTERM and wait; SIGKILL if it does not stop within `graceMs`. */
  async stop(graceMs = 5000) {
    await stopChild(this.child, graceMs);
    await this.exited;
  }

  /** kill -9: no chance to clean up. */
  async kill() {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Runs `command args` (see Launched for the options). */
function launch(command, args = [], options = {}) {
  return new Launched(command, args, options);
}

/**
 * Runs a Node script with this Node (`--enable-source-maps`), optionally under a wrapper command that
 * execs it (e.g. `['ip', 'netns', 'exec', 'ns1']`, which keeps the pid).
 */
function launchNode(script, args = [], { via = [], ...options } = {}) {
  const [command, ...rest] = [...via, process.execPath, '--enable-source-maps', script, ...args];
  return launch(command, rest, { name: path.basename(script, '.js'), ...options });
}

/** Runs a built flexmig service: `node dist/apps/<app>/<entry>.js`. */
function launchService(app, { entry, ...options } = {}) {
  return launchNode(appEntry(app, entry), [], { name: app, ...options });
}

module.exports = { root, sleep, freePort, appEntry, stopChild, Launched, launch, launchNode, launchService };
