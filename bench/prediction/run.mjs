#!/usr/bin/env node
// Prediction benchmark (issue 12, part 2): how far POST /api/v1/migrations/predict is from the migration
// that follows it. For each guest (idle or dirtying), size and bandwidth cap, on a fresh pair of agents:
// predict, migrate with the same policy, compare the prediction the migration recorded with its result.
// The whole stack runs (inventory, cpu-compat, scheduler, two agents); DRIVER=qemu (TCG) and DRIVER=sim.
//
//   npm run build && node bench/prediction/run.mjs
//
// Knobs (environment, defaults in brackets): BENCH_DRIVERS [qemu,sim], BENCH_SIZES [512,2048] (MiB),
// BENCH_WORKLOADS [idle,dirty], BENCH_CAPS [0,256] (MiB/s; 0 = uncapped), BENCH_REPS [2] (migrations per
// case, a→b then b→a: the second predicts with the bandwidth the first measured), BENCH_ACCEL [tcg],
// BENCH_DIRTY_RATE_MIBPS [128] and BENCH_WORKING_SET_MIB [256] (the dirtying guest), BENCH_PORT_BASE [3300],
// NATS_URL, DATABASE_URL. Prints a line per migration and the table of median |error|.
// Exits 1 only if the benchmark could not run.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { api, ensureBuilt, localAuth, preflight, Processes, recreateDatabase, root, sleep } from '../../scripts/lib.mjs';

const list = (v, d) => (v ?? d).split(',').filter(Boolean);
const drivers = list(process.env.BENCH_DRIVERS, 'qemu,sim');
const sizes = list(process.env.BENCH_SIZES, '512,2048').map(Number);
const workloads = list(process.env.BENCH_WORKLOADS, 'idle,dirty');
const caps = list(process.env.BENCH_CAPS, '0,256').map(Number);
const reps = Number(process.env.BENCH_REPS ?? 2);
const accel = process.env.BENCH_ACCEL ?? 'tcg';
const dirtyRate = Number(process.env.BENCH_DIRTY_RATE_MIBPS ?? 128);
const workingSet = Number(process.env.BENCH_WORKING_SET_MIB ?? 256);
const portBase = Number(process.env.BENCH_PORT_BASE ?? 3300);
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const dbUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig');
dbUrl.pathname = '/flexmig_bench_prediction';
const env = { NATS_URL: natsUrl, DATABASE_URL: dbUrl.toString(), SUBJECT_PREFIX: 'flexmig_bench_prediction', LOG_LEVEL: 'warn' };
const urls = { inventory: `http://127.0.0.1:${portBase + 1}`, scheduler: `http://127.0.0.1:${portBase + 2}` };
const benchDir = path.join(root, '.flexmig/bench-prediction');
const log = (s = '') => process.stdout.write(`${s}\n`);
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const pct = (x) => `${Math.round(x * 100)} %`;
const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** |predicted − actual| / actual. */
const relErr = (predicted, actual) => Math.abs(predicted - actual) / Math.max(actual, 1);

/** QEMU processes started for this bench (their command line names its directory): killed at the end. */
function benchQemuPids() {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmd.startsWith('qemu-system') && cmd.includes(benchDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}
async function killBenchQemus() {
  for (const pid of benchQemuPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && benchQemuPids().length; i++) await sleep(100);
}

/** Waits until `ok(body)` of GET url holds. */
async function until(what, url, route, ok, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(url, 'GET', route);
    if (r.status === 200 && ok(r.body)) return r.body;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s (last answer HTTP ${r.status})`);
    await sleep(200);
  }
}

/** The qemu guest has written its range once (it writes `B` on its serial port after each full pass). */
async function waitWarm(runDir, vmId) {
  const st = JSON.parse(readFileSync(path.join(runDir, `${vmId}.json`), 'utf8'));
  const deadline = Date.now() + 300_000;
  for (;;) {
    let serial = '';
    try {
      serial = readFileSync(st.serialFile, 'latin1');
    } catch {
      // not written yet
    }
    if (serial.includes('B')) return;
    if (Date.now() > deadline) throw new Error(`VM ${vmId}: its guest did not complete a full pass within 300 s`);
    await sleep(100);
  }
}

/** Predicts, then migrates with the same policy; the prediction the migration recorded against its result. */
async function predictAndMigrate(vmId, to, policy) {
  const p = await api(urls.scheduler, 'POST', '/api/v1/migrations/predict', { vmId, targetHostId: to, policy });
  if (p.status !== 200) throw new Error(`predict: HTTP ${p.status} ${JSON.stringify(p.body)}`);
  const req = await api(urls.scheduler, 'POST', '/api/v1/migrations', { vmId, targetHostId: to, policy });
  if (req.status !== 202) throw new Error(`migrate: HTTP ${req.status} ${JSON.stringify(req.body)}`);
  if (!req.body.prediction) throw new Error(`the migration recorded no prediction: ${req.body.predictionError}`);
  const m = await until(`migration ${req.body.id}`, urls.scheduler, `/api/v1/migrations/${req.body.id}`, (b) =>
    ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(b.state),
  );
  if (m.state !== 'completed') throw new Error(`migration ${m.id} ${m.state}: ${m.failure?.message}`);
  return { asked: p.body, recorded: req.body.prediction, result: m.result };
}

async function runCase(procs, cluster, c, agentPort) {
  const tag = `${c.driver}-${c.w}-${c.size}-${c.cap}`;
  // QMP socket paths must stay under 108 bytes: the run directory is named by the agent's port, not the case
  const hosts = ['a', 'b'].map((x, i) => ({ id: `bp-${tag}-${x}`, runDir: path.join(benchDir, String(agentPort + i)) }));
  const workload = c.w === 'dirty' ? { rate: dirtyRate, ws: Math.min(workingSet, c.size - 16) } : null;
  const agents = hosts.map((h, i) =>
    procs.start(h.id, 'agent', {
      ...env,
      HOST_ID: h.id,
      CLUSTER_ID: cluster.id,
      DRIVER: c.driver,
      PORT: String(agentPort + i),
      MIGRATION_ADDRESS: `127.0.0.1:${49600 + i}`,
      AGENT_STATE_DIR: path.join(benchDir, `${tag}-${['a', 'b'][i]}-state`),
      ...(c.driver === 'qemu'
        ? {
            QEMU_RUN_DIR: h.runDir,
            QEMU_ACCEL: accel,
            QEMU_MIGRATION_PORT_RANGE: '49800-49899',
            QEMU_HOST_VCPUS: '8',
            ...(workload ? { QEMU_GUEST_DIRTY_RATE_MIBPS: String(workload.rate), QEMU_GUEST_WORKING_SET_MIB: String(workload.ws) } : {}),
          }
        : {
            SIM_TIME_SCALE: '1',
            SIM_MEMORY_MIB: '65536',
            ...(workload ? { SIM_DIRTY_RATE_MIBPS: String(workload.rate), SIM_WORKING_SET_MIB: String(workload.ws) } : { SIM_DIRTY_RATE_MIBPS: '0' }),
          }),
    }),
  );
  await Promise.all(agents.map((a) => procs.waitReady(a, 120_000)));
  await until('the agents to register', urls.inventory, `/api/v1/hosts?clusterId=${cluster.id}`, (b) => b.items?.filter((h) => hosts.some((x) => x.id === h.id) && h.state === 'up').length === 2);
  const created = await api(urls.inventory, 'POST', '/api/v1/vms', { name: `bp-${tag}`, hostId: hosts[0].id, memoryMiB: c.size, vcpus: 1 });
  if (created.status !== 201) throw new Error(`creating the VM: HTTP ${created.status} ${JSON.stringify(created.body)}`);
  const vmId = created.body.id;
  if (c.driver === 'qemu') await waitWarm(hosts[0].runDir, vmId);
  const policy = c.cap ? { bandwidthMiBps: c.cap } : {};
  const runs = [];
  for (let n = 0; n < reps; n++) {
    const to = hosts[(n + 1) % 2].id;
    await sleep(1000); // let the machine settle after the previous migration
    let r;
    try {
      r = await predictAndMigrate(vmId, to, policy);
    } catch (e) {
      // a loaded machine can fail one run (a calc-dirty-rate that does not finish): say so, go on
      log(`  ${tag.padEnd(22)} #${n + 1}  FAILED: ${e.message}`);
      runs.push({ failed: true });
      continue;
    }
    const p = r.recorded.predicted;
    const bw = r.recorded.inputs.bandwidthBytesPerSec;
    const dr = r.recorded.inputs.dirtyRateBytesPerSec;
    const e = { total: relErr(p.totalTimeMs, r.result.totalTimeMs), downtime: relErr(p.downtimeMs, r.result.downtimeMs) };
    log(
      `  ${tag.padEnd(22)} #${n + 1}  predicted ${fmt(p.totalTimeMs).padStart(8)} / ${fmt(p.downtimeMs).padStart(7)} / ${p.passes} passes` +
        `   actual ${fmt(r.result.totalTimeMs).padStart(8)} / ${fmt(r.result.downtimeMs).padStart(7)} / ${r.result.passes} passes` +
        `   |error| ${pct(e.total)} / ${pct(e.downtime)}   inputs: dirty ${(dr.value / 2 ** 20).toFixed(1)} MiB/s (${dr.origin}), link ${(bw.value / 2 ** 20).toFixed(0)} MiB/s (${bw.origin})`,
    );
    runs.push({ ...e, bandwidthOrigin: bw.origin });
  }
  await killBenchQemus();
  return runs;
}

async function main() {
  ensureBuilt(['inventory', 'scheduler', 'cpu-compat', 'agent', 'cli']); // cli: the local auth files (flexmig auth init)
  await preflight({ natsUrl, databaseUrl: env.DATABASE_URL });
  await recreateDatabase(env.DATABASE_URL);
  Object.assign(env, (await localAuth()).env);
  await killBenchQemus();
  rmSync(benchDir, { recursive: true, force: true });
  const procs = new Processes({ logDir: path.join(benchDir, 'logs'), echo: false });
  const rows = [];
  try {
    const svc = [
      procs.start('cpu-compat', 'cpu-compat', { ...env, PORT: String(portBase + 3) }),
      procs.start('inventory', 'inventory', { ...env, PORT: String(portBase + 1) }),
      // every migration here must record its prediction (it is what the bench compares), however loaded the machine
      procs.start('scheduler', 'scheduler', { ...env, PORT: String(portBase + 2), PREDICTION_WAIT_MS: '60000' }),
    ];
    await Promise.all(svc.map((s) => procs.waitReady(s, 120_000))); // a loaded machine starts them slowly
    let port = portBase + 20;
    for (const driver of drivers) {
      // one cluster per driver: simulated and real hosts have different CPUs (a cluster needs a common baseline)
      const cluster = (await api(urls.inventory, 'POST', '/api/v1/clusters', { name: `bench-prediction-${driver}` })).body;
      for (const w of workloads) {
        for (const size of sizes) {
          for (const cap of caps) {
            const c = { driver, w, size, cap };
            let runs;
            try {
              runs = await runCase(procs, cluster, c, port);
            } catch (e) {
              // a loaded machine may not even start a 2 GiB guest in time: report the case, go on
              log(`  ${`${driver}-${w}-${size}-${cap}`.padEnd(22)} case FAILED: ${e.message}`);
              runs = [{ failed: true }];
              await killBenchQemus();
            }
            port += 2;
            rows.push({ ...c, runs });
          }
        }
      }
    }
  } finally {
    await procs.stopAll();
    await killBenchQemus();
  }
  log('');
  log(`median |predicted − actual| / actual over ${reps} migrations per case (a→b, then b→a); accel ${accel}; dirtying guest ${dirtyRate} MiB/s over min(${workingSet} MiB, RAM − 16 MiB)`);
  // "learnt": the link and the control plane's costs came from an earlier migration between the two hosts
  const learnt = (x) => !x.failed && x.bandwidthOrigin === 'migrations';
  const cells = (runs) => [runs.filter(learnt), runs.filter((x) => !x.failed && !learnt(x))].map((rs) => (rs.length ? `${pct(med(rs.map((x) => x.total)))} / ${pct(med(rs.map((x) => x.downtime)))}` : '–'));
  log('| driver | guest | RAM | cap | |error| total / downtime, after a migration between the hosts | |error| total / downtime, first migration (link probed or assumed) |');
  log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) log(`| ${r.driver} | ${r.w} | ${r.size} MiB | ${r.cap ? `${r.cap} MiB/s` : 'none'} | ${cells(r.runs).join(' | ')} |${r.runs.some((x) => x.failed) ? ` ${r.runs.filter((x) => x.failed).length} run(s) failed` : ''}`);
  for (const driver of drivers) log(`| ${driver} | all | | | ${cells(rows.filter((r) => r.driver === driver).flatMap((r) => r.runs)).join(' | ')} |`);
  const q = rows.filter((r) => r.driver === 'qemu').flatMap((r) => r.runs).filter(learnt);
  if (q.length) {
    const ok = med(q.map((x) => x.total)) <= 0.2 && med(q.map((x) => x.downtime)) <= 0.2;
    log(ok ? 'goal met: median |error| ≤ 20 % on total time and downtime for QEMU, after a migration between the hosts' : 'goal MISSED: median |error| > 20 % for QEMU after a migration between the hosts (see the table)');
  }
  rmSync(benchDir, { recursive: true, force: true });
  process.exit(0);
}

main().catch(async (e) => {
  console.error(`bench failed: ${e.stack ?? e.message}`);
  await killBenchQemus();
  process.exit(1);
});
