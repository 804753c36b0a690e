#!/usr/bin/env node
// `npm run faults`: runs the whole fault matrix (apps/scheduler/e2e/faults, a Jest project of its own that
// `npm test` leaves out) on the built services, one scenario at a time, and writes docs/fault-matrix.md.
//   npm run faults                         build, run every scenario, write the document
//   npm run faults -- --no-build           run on what dist/ holds
//   FAULTS_FILTER='kill-scheduler' npm run faults   only the scenarios whose id matches (the document then
//                                          lists only those: rerun the whole matrix before committing it)
//   FAULTS_DRIVER=sim|qemu                 only one driver's scenarios
//   --render-only                          write the document again from the last results (after editing
//                                          scripts/faults/findings.md), running nothing
//   --merge                                with FAULTS_FILTER: rerun those scenarios and replace their rows in the
//                                          last results (the other rows stay as they were)
//   FUZZ_RESULTS=<file>                    the fuzz counts for the "Fuzzing" section (default dist/fuzz/results.json)
// Exits non-zero when a scenario failed (the document still shows which, and why).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import launcher from '../libs/testing/src/launcher.cjs';
import { renderMatrix } from './faults/render.mjs';

const { root } = launcher;
const resultsFile = path.join(root, 'dist/faults/results.json');
const fuzzFile = process.env.FUZZ_RESULTS ?? path.join(root, 'dist/fuzz/results.json');
const docFile = path.join(root, 'docs/fault-matrix.md');

const run = (cmd, args, env = {}) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } }).status ?? 1;

const findingsFile = path.join(root, 'scripts/faults/findings.md');
const findings = () => (existsSync(findingsFile) ? [readFileSync(findingsFile, 'utf8').trim()] : []);
const date = () => `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;

if (process.argv.includes('--render-only')) {
  if (!existsSync(resultsFile)) throw new Error(`no results to render (${resultsFile}): run npm run faults first`);
  const last = JSON.parse(readFileSync(resultsFile, 'utf8'));
  writeFileSync(docFile, renderMatrix({ results: last.results, run: { wallMs: last.wallMs, date: last.finishedAt.slice(0, 16).replace('T', ' ') + ' UTC', command: 'npm run faults' }, fuzzFile, fuzzLabel: path.relative(root, fuzzFile), notes: last.notes ?? [], appendix: findings() }));
  console.log(`wrote ${path.relative(root, docFile)} from ${path.relative(root, resultsFile)}`);
  process.exit(0);
}

if (!process.argv.includes('--no-build') && run('npm', ['run', '--silent', 'build']) !== 0) {
  console.error('npm run faults: the build failed; nothing ran');
  process.exit(1);
}

mkdirSync(path.dirname(resultsFile), { recursive: true });
const merge = process.argv.includes('--merge');
const previous = merge && existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : undefined;
rmSync(resultsFile, { force: true });
const started = Date.now();
const status = run('npm', ['run', '--silent', 'jest', '--', '--selectProjects', 'faults', '--runInBand'], { FLEXMIG_FAULTS: '1', FAULTS_RESULTS: resultsFile });
const wallMs = Date.now() - started;

if (!existsSync(resultsFile)) {
  console.error(`npm run faults: the matrix wrote no results (${resultsFile}); see the Jest output above`);
  process.exit(status || 1);
}
const fresh = JSON.parse(readFileSync(resultsFile, 'utf8'));
let results = fresh.results;
let notes = [];
let wallTotal = wallMs;
if (previous) {
  const rerun = new Map(results.map((r) => [r.id, r]));
  results = [...previous.results.map((r) => rerun.get(r.id) ?? r), ...results.filter((r) => !previous.results.some((p) => p.id === r.id))];
  wallTotal = (previous.wallMs ?? 0) + wallMs;
  notes = [...(previous.notes ?? []), `> Rows rerun with \`--merge\` (${[...rerun.keys()].map((id) => `\`${id}\``).join(', ')}); wall time: the full run plus the rerun.`];
  writeFileSync(resultsFile, `${JSON.stringify({ ...fresh, results, wallMs: wallTotal, notes }, null, 2)}\n`);
} else {
  writeFileSync(resultsFile, `${JSON.stringify({ ...fresh, wallMs }, null, 2)}\n`);
  const partial = process.env.FAULTS_FILTER || process.env.FAULTS_DRIVER;
  if (partial) notes = [`> Partial run (FAULTS_FILTER=${process.env.FAULTS_FILTER ?? ''} FAULTS_DRIVER=${process.env.FAULTS_DRIVER ?? ''}).`];
}
writeFileSync(docFile, renderMatrix({ results, run: { wallMs: wallTotal, date: date(), command: 'npm run faults' }, fuzzFile, fuzzLabel: path.relative(root, fuzzFile), notes, appendix: findings() }));
const failed = results.filter((r) => !r.passed);
console.log(`\nfault matrix: ${results.length - failed.length}/${results.length} scenarios passed in ${Math.round(wallTotal / 1000)} s; wrote ${path.relative(root, docFile)}`);
for (const r of failed) console.log(`  failed: ${r.id}`);
process.exit(status !== 0 || failed.length ? 1 : 0);
