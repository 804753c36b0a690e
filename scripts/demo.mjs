#!/usr/bin/env node
// `npm run demo`: starts flexmig (its own database and subject prefix, so a running `npm start` is not
// disturbed), creates a cluster of three hosts of different CPU generations and a VM, live-migrates the
// VM to the oldest host showing each step and the memory copy as they happen, prints the result, shows
// that a VM whose CPU baseline a host lacks is refused at step 1, and exits 0 with the VM on its new host.
// `--driver qemu`: the same with a real VM under QEMU between two qemu agents (scripts/demo-qemu.mjs).
// Secure by default, as `npm start`: identities from .flexmig/auth and a nats-server of its own on a free
// port (DEMO_NATS_PORT); `AUTH=off` uses the NATS of NATS_URL without identities.
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import path from 'node:path';
import {
  api,
  authOff,
  bold,
  cyan,
  demoHosts,
  dim,
  ensureBuilt,
  green,
  localAuth,
  plainNats,
  preflight,
  PreflightError,
  Processes,
  recreateDatabase,
  red,
  root,
  sleep,
  startSecureNats,
  yellow,
} from './lib.mjs';
import launcher from '../libs/testing/src/launcher.cjs';

const require = createRequire(import.meta.url);
const { connect } = require('@nats-io/transport-node');

/**
 * The demo's NATS: with identities (default), a nats-server of its own started into `procs`; with
 * AUTH=off, the one at NATS_URL. Sets `env`'s NATS_URL and SUBJECT_PREFIX (the identities' prefix: the
 * server is the demo's own, so it needs no prefix of its own to stay apart from `npm start`).
 */
async function demoNats(procs, env, natsUrl) {
  const port = Number(process.env.DEMO_NATS_PORT ?? (await launcher.freePort()));
  const nats = authOff() ? await plainNats(natsUrl) : await startSecureNats(procs, { name: 'demo', port });
  Object.assign(env, { NATS_URL: nats.url }, nats.prefix ? { SUBJECT_PREFIX: nats.prefix } : {});
  return nats;
}

const base = Number(process.env.DEMO_PORT_BASE ?? 3100);
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const dbUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig');
dbUrl.pathname = '/flexmig_demo';
const env = { NATS_URL: natsUrl, DATABASE_URL: dbUrl.toString(), SUBJECT_PREFIX: 'flexmig_demo', LOG_LEVEL: 'warn' };
const urls = { inventory: `http://127.0.0.1:${base + 1}`, scheduler: `http://127.0.0.1:${base + 2}`, cpu: `http://127.0.0.1:${base + 3}` };
const vmMemoryMiB = Number(process.env.DEMO_VM_MEMORY_MIB ?? 4096);
const tty = process.stdout.isTTY;

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const fmtBytes = (b) => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(0)} MiB`);
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const say = (s = '') => process.stdout.write(`${s}\n`);

function expect(res, status, what) {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

async function waitFor(what, probe, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Follows one migration: step lines as they complete, and a progress line while memory is copied. */
async function follow(migrationId, nc, prefix = env.SUBJECT_PREFIX) {
  const shown = new Set();
  let progress;
  let lastPrinted = 0;
  const sub = nc.subscribe(`${prefix}.progress.migration.${migrationId}.*`); // the last token: the agent's host
  void (async () => {
    for await (const m of sub) progress = JSON.parse(new TextDecoder().decode(m.data));
  })();
  const bar = (pct) => {
    const n = Math.round(pct / 5);
    return `${'█'.repeat(n)}${'░'.repeat(20 - n)}`;
  };
  let liveLine = false;
  const clearLive = () => {
    if (tty && liveLine) process.stdout.write('\r\x1b[2K');
    liveLine = false;
  };
  for (;;) {
    const m = expect(await api(urls.scheduler, 'GET', `/api/v1/migrations/${migrationId}`), 200, 'reading the migration');
    for (const st of m.steps) {
      const key = `${st.number}:${st.status}`;
      if (shown.has(key)) continue;
      if (st.status === 'completed') {
        clearLive();
        say(`  ${dim(`[${st.number}/9]`)} ${st.name.padEnd(21)} ${green('✓')} ${fmtMs(st.durationMs ?? 0).padStart(8)}${st.number === 7 ? dim('   ← point of no return') : ''}`);
        shown.add(key);
      } else if (st.status === 'failed' || st.status === 'compensated' || st.status === 'compensation-failed') {
        clearLive();
        say(`  ${dim(`[${st.number}/9]`)} ${st.name.padEnd(21)} ${st.status === 'compensated' ? yellow('↶ undone') : red('✗ ' + (st.error?.message ?? st.status))}`);
        shown.add(key);
      }
    }
    if (['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(m.state)) {
      clearLive();
      sub.unsubscribe();
      return m;
    }
    if (progress && (m.currentStep?.number === 3 || m.currentStep?.number === 4)) {
      const line =
        `  ${dim(`[${m.currentStep.number}/9]`)} ${m.currentStep.name.padEnd(21)} ${bar(progress.percent)} ${progress.percent.toFixed(0).padStart(3)}%  ` +
        `pass ${progress.pass}  ${fmtBytes(progress.transferredBytes)} sent, ${fmtBytes(progress.remainingBytes)} left  ` +
        `${(progress.bandwidthBytesPerSec / MiB).toFixed(0)} MiB/s  dirty ${(progress.dirtyRateBytesPerSec / MiB).toFixed(0)} MiB/s` +
        (progress.throttlePct ? `  throttle ${progress.throttlePct}%` : '');
      if (tty) {
        process.stdout.write(`\r\x1b[2K${line}`);
        liveLine = true;
      } else if (Date.now() - lastPrinted > 500) {
        say(line);
        lastPrinted = Date.now();
      }
    }
    await sleep(100);
  }
}

async function main() {
  const t0 = Date.now();
  say(bold('flexmig demo — live migration across CPU generations'));
  ensureBuilt(['inventory', 'scheduler', 'cpu-compat', 'agent', 'cli']);
  await preflight({ databaseUrl: env.DATABASE_URL });
  await recreateDatabase(env.DATABASE_URL);
  await withLocalAuth();
  const logDir = path.join(root, '.flexmig/demo-logs');
  const demoStateDir = path.join(root, '.flexmig/demo-state');
  rmSync(demoStateDir, { recursive: true, force: true }); // a fresh database each run, so fresh agent state too
  const procs = new Processes({ logDir, echo: false });
  let failed = false;
  procs.onExit = (name, code) => {
    failed = true;
    console.error(red(`\n${name} stopped unexpectedly (code ${code}); its log: ${path.join(logDir, `${name}.log`)}`));
  };
  let nats;
  try {
    nats = await demoNats(procs, env, natsUrl);
  } catch (e) {
    await procs.stopAll();
    throw e;
  }
  const nc = await connect({ servers: nats.url, ...nats.clientOptions() });
  try {
    if (!authOff()) say(dim(`  NATS ${nats.url} with identities (.flexmig/auth); HTTP tokens in .flexmig/auth/{admin,operator,viewer}.token`));
    process.stdout.write(`  starting cpu-compat, inventory and scheduler … `);
    const services = [
      procs.start('cpu-compat', 'cpu-compat', { ...env, ...nats.serviceEnv('cpu-compat'), PORT: String(base + 3) }),
      procs.start('inventory', 'inventory', { ...env, ...nats.serviceEnv('inventory'), PORT: String(base + 1) }),
      procs.start('scheduler', 'scheduler', { ...env, ...nats.serviceEnv('scheduler'), PORT: String(base + 2) }),
    ];
    await Promise.all(services.map((s) => procs.waitReady(s)));
    say(green('ready'));

    const cluster = expect(await api(urls.inventory, 'POST', '/api/v1/clusters', { name: 'demo' }), 201, 'creating the cluster');
    say(`  cluster ${bold(cluster.name)} created ${dim(cluster.id)}`);
    const agents = demoHosts.map((h, i) =>
      procs.start(h.id, 'agent', {
        ...env,
        ...nats.agentEnv(h.id),
        HOST_ID: h.id,
        CLUSTER_ID: cluster.id,
        SIM_CPU: h.cpu,
        // its own step ledgers and VM records: a running `npm start` has agents of the same host ids
        AGENT_STATE_DIR: demoStateDir,
        PORT: String(base + 11 + i),
        MIGRATION_ADDRESS: `127.0.0.1:${49252 + i}`,
        // a busy guest: it re-dirties 1.5 GiB at 600 MiB/s, so the copy needs several passes to converge
        SIM_DIRTY_RATE_MIBPS: process.env.SIM_DIRTY_RATE_MIBPS ?? '600',
        SIM_WORKING_SET_MIB: process.env.SIM_WORKING_SET_MIB ?? '1536',
      }),
    );
    await Promise.all(agents.map((a) => procs.waitReady(a)));
    const hosts = await waitFor('the three hosts to register', async () => {
      const r = await api(urls.inventory, 'GET', `/api/v1/hosts?clusterId=${cluster.id}`);
      return r.status === 200 && r.body.items.filter((h) => h.state === 'up').length === demoHosts.length ? r.body.items : undefined;
    });
    say(`  three agents registered their hosts:`);
    for (const h of hosts) say(`    ${h.id}  ${h.cpu.modelName.padEnd(44)} highest CPU mode ${cyan(h.maxImcMode)}`);
    const plan = expect(await api(urls.inventory, 'GET', `/api/v1/clusters/${cluster.id}/imc/plan`), 200, "reading the cluster's CPU plan");
    const without = Object.fromEntries(plan.withoutHost.map((w) => [w.hostId, w.mode]));
    say(`  the cluster's plan: highest common mode ${cyan(plan.mode)}, held down by ${bold(plan.holdingDown.join(', ') || 'no host')}`);
    for (const h of plan.hostModes) say(`    without ${h.hostId.padEnd(10)} the cluster's mode would be ${cyan(without[h.hostId] ?? 'none')}`);

    const newest = demoHosts[demoHosts.length - 1].id;
    const oldest = demoHosts[0].id;
    const vm = expect(
      await api(urls.inventory, 'POST', '/api/v1/vms', { name: 'demo-vm', hostId: newest, memoryMiB: vmMemoryMiB, vcpus: 2 }),
      201,
      'creating the VM',
    );
    say(`  VM ${bold(vm.name)} (${vm.memoryMiB} MiB, ${vm.vcpus} vCPUs) runs on ${newest} with the cluster's common CPU baseline ${cyan(vm.cpuBaseline)}`);

    say('');
    say(bold(`live-migrating ${vm.name}: ${newest} (${demoHosts[2].cpu}) → ${oldest} (${demoHosts[0].cpu})`));
    const created = expect(await api(urls.scheduler, 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: oldest }), 202, 'requesting the migration');
    const m = await follow(created.id, nc);
    if (m.state !== 'completed') throw new Error(`the migration ended ${m.state}: ${m.failure?.message ?? ''}`);
    const r = m.result;
    say(
      `  ${green('completed')} in ${bold(fmtMs(r.totalTimeMs))}: downtime ${bold(fmtMs(r.downtimeMs))}, ` +
        `${bold(fmtBytes(r.bytesTransferred))} moved in ${r.passes} ${r.passes === 1 ? 'pass' : 'passes'}`,
    );
    const after = expect(await api(urls.inventory, 'GET', `/api/v1/vms/${vm.id}`), 200, 'reading the VM');
    if (after.hostId !== oldest) throw new Error(`inventory says the VM is on ${after.hostId}, not ${oldest}`);
    say(`  inventory: ${vm.name} runs on ${bold(after.hostId)} ${green('✓')}`);

    say('');
    say(bold('and a migration the CPU check refuses:'));
    const picky = expect(
      await api(urls.inventory, 'POST', '/api/v1/vms', { name: 'ivy-vm', hostId: newest, memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' }),
      201,
      'creating a VM with baseline IvyBridge',
    );
    say(`  VM ${picky.name} started with baseline ${cyan(picky.cpuBaseline)} on ${newest}; migrating it to ${oldest} (${demoHosts[0].cpu}) …`);
    const refused = expect(await api(urls.scheduler, 'POST', '/api/v1/migrations', { vmId: picky.id, targetHostId: oldest }), 202, 'requesting it');
    const rm = await follow(refused.id, nc);
    if (rm.state !== 'rolled-back' || rm.failure?.step !== 1) throw new Error(`expected a refusal at step 1, got ${rm.state}`);
    say(`  ${yellow('refused at step 1')}: ${rm.failure.message}`);
    say(`  ${picky.name} still runs on ${newest} ${green('✓')}`);
    say('');
    say(dim(`demo done in ${fmtMs(Date.now() - t0)}; service logs in ${logDir}`));
  } finally {
    await nc.close();
    await procs.stopAll();
  }
  if (failed) process.exit(1);
}

/** `--driver sim|qemu` (also `--driver=qemu`); sim when absent. */
function driverArg(argv) {
  const i = argv.findIndex((a) => a === '--driver' || a.startsWith('--driver='));
  if (i < 0) return 'sim';
  const v = argv[i].includes('=') ? argv[i].slice('--driver='.length) : argv[i + 1];
  if (v !== 'sim' && v !== 'qemu') {
    console.error(red(`--driver must be sim or qemu, not ${v ?? '(nothing)'}`));
    process.exit(2);
  }
  return v;
}

/** Tokens are on in the demo too: the services check them with .flexmig/auth/jwt.secret; api() sends the admin token. */
async function withLocalAuth() {
  const auth = await localAuth();
  Object.assign(env, auth.env);
  say(dim(`  bearer tokens on; the admin token is ${path.relative(process.cwd(), auth.tokenFiles.admin)}`));
}

const run =
  driverArg(process.argv.slice(2)) === 'qemu'
    ? () =>
        withLocalAuth()
          .then(() => import('./demo-qemu.mjs'))
          .then((q) => q.runQemuDemo({ env, urls, natsUrl, demoNats, follow, expect, waitFor, fmtMs, fmtBytes, say }))
    : main;

run().catch((e) => {
  console.error(red(`\ndemo failed: ${e instanceof PreflightError ? e.message : e.message}`));
  process.exit(1);
});
