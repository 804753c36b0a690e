#!/usr/bin/env node
// What one change of an agent's step ledger costs on disk, by how many migrations the ledger holds (it
// keeps three days of them: ledgerRetentionMs). An agent writes its ledger two or three times per step,
// some of them inside the guest's downtime (steps 5–7), before it answers.
//
//   node bench/agent-ledger/run.mjs
//
// BENCH_LEDGER_SIZES [0,100,1000,3000] (migrations already in the ledger, four records each, as a source
// keeps them), BENCH_LEDGER_CHANGES [200] (changes timed per size). For each size it prints the p50 and
// p99 of one change written as the agent writes it now (LedgerStore: the migration's own file), and of
// the same change written as agents before it did (the whole ledger in one file: snapshot, JSON, rename).
// The sources are bundled with esbuild (a dev dependency) from apps/agent/src: no build needed.
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '../..');
const ints = (name, dflt) => (process.env[name] ?? dflt).split(',').map((x) => Number(x.trim()));
const sizes = ints('BENCH_LEDGER_SIZES', '0,100,1000,3000');
const changes = ints('BENCH_LEDGER_CHANGES', '200')[0];

const work = mkdtempSync(path.join(os.tmpdir(), 'flexmig-bench-ledger-'));
try {
  // beside the repository's node_modules, which the bundle's packages resolve from
  const out = path.join(root, 'dist', 'bench', 'agent-ledger.cjs');
  await build({
    stdin: {
      contents: `export { LedgerStore } from './apps/agent/src/ledger-store';
        export { StepLedger } from './apps/agent/src/step-ledger';
        export { writePrivateFileAtomic } from './apps/agent/src/private-files';
        export { MigrationPolicySchema, stepName } from '@flexmig/contracts';`,
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: out,
    tsconfig: path.join(root, 'tsconfig.base.json'),
    packages: 'external',
    logLevel: 'warning',
  });
  const { LedgerStore, StepLedger, writePrivateFileAtomic, MigrationPolicySchema, stepName } = (await import(pathToFileURL(out).href)).default;

  const vm = { id: crypto.randomUUID(), name: 'bench-vm', memoryMiB: 2048, vcpus: 2, cpuBaseline: 'Skylake-Server' };
  const policy = MigrationPolicySchema.parse({});
  const cmd = (migrationId, step) => ({ migrationId, step, stepName: stepName(step), attempt: 1, role: 'source', vm, sourceHostId: 'host-a', targetHostId: 'host-b', policy });
  // what a source's step 3 answers on the qemu driver, about as large as a real one
  const stats = { passes: 3, bytesTransferred: 2147483648, remainingBytes: 1048576, throttlePct: 0, bandwidthBytesPerSec: 734003200, dirtyRateBytesPerSec: 1048576, setupMs: 12, totalMs: 2912 };
  const done = async () => async () => ({ stats });
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  const ms = (x) => x.toFixed(2).padStart(8);

  console.log(`flexmig agent-ledger benchmark — ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), node ${process.version}, ${changes} changes per size, files in ${os.tmpdir()}`);
  console.log('');
  console.log('| migrations in the ledger | records | one change, a file per migration: p50 / p99 ms | the whole ledger in one file (before): p50 / p99 ms |');
  console.log('| --- | --- | --- | --- |');
  for (const size of sizes) {
    const stateDir = mkdtempSync(path.join(work, `size-${size}-`));
    const store = new LedgerStore({ HOST_ID: 'bench', AGENT_STATE_DIR: stateDir });
    const now = [];
    const whole = [];
    let timing = false;
    // every change goes through the store as an agent's does (LedgerStore.load); while timing, also written the old way
    const ledger = new StepLedger((l, migrationId) => {
      const t0 = performance.now();
      store.save(l, migrationId);
      const t1 = performance.now();
      if (!timing) return;
      writePrivateFileAtomic(store.singleFile, JSON.stringify(l.snapshot()));
      const t2 = performance.now();
      now.push(t1 - t0);
      whole.push(t2 - t1);
    });
    for (let i = 0; i < size; i++) {
      const m = crypto.randomUUID();
      for (const step of [3, 4, 6, 8]) await ledger.run(cmd(m, step), done);
    }
    timing = true;
    for (let i = 0; now.length < changes; i++) await ledger.run(cmd(crypto.randomUUID(), 3), done);
    console.log(`| ${size} | ${ledger.snapshot().entries.length} | ${ms(q(now, 0.5))} / ${ms(q(now, 0.99))} | ${ms(q(whole, 0.5))} / ${ms(q(whole, 0.99))} |`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
