#!/usr/bin/env node
// Control-plane benchmark (issue 4, item 11): the scheduler's orchestration overhead per migration
// (p50/p99, one at a time), its throughput (many in flight, two scheduler replicas), and beside them a
// floor measured in the same run: the same number of NATS request/replies and PostgreSQL commits with
// no logic, strictly in sequence. Zero-cost VMs: a `sim` fleet with SIM_TIME_SCALE=0.
//
//   npm run build && node bench/control-plane/run.mjs
//
// Everything runs on its own subject prefix and its own database (created fresh, dropped at the end),
// so a running `npm start` or test suite is not disturbed. Exits non-zero only when the benchmark could
// not run (services did not start, migrations did not complete); missing a goal is reported, not fatal.
// Knobs (environment): BENCH_VMS, BENCH_HOSTS, BENCH_SEQ, BENCH_WARMUP, BENCH_THROUGHPUT, BENCH_INFLIGHT,
// BENCH_PORT_BASE, BENCH_KEEP_LOGS=1, BENCH_CPU_PROF=<dir> (a CPU profile of each service and the fleet),
// BENCH_SIM_SWITCHOVER=steps|qemu (the fleet's SIM_SWITCHOVER: qemu does steps 5 and 7 inside 4 and 6, as the
// qemu driver does), NATS_URL, DATABASE_URL.
import { mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { api, localAuth, Processes, sleep } from '../../scripts/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const pgLib = require('pg');
// every client and pool ignores connection errors after the fact (the database is dropped WITH (FORCE) on cleanup)
const quiet = (c) => (c.on('error', () => undefined), c);
const pg = { Client: class extends pgLib.Client { constructor(o) { super(o); quiet(this); } }, Pool: class extends pgLib.Pool { constructor(o) { super(o); quiet(this); } } };
const utf8 = { encode: (s) => new TextEncoder().encode(s), decode: (b) => new TextDecoder().decode(b) };

// ---------------------------------------------------------------------------------------------------
// responder mode: a trivial NATS responder in its own process (like an agent: another process)
if (process.argv[2] === '--responder') {
  const nc = await connect({ servers: process.argv[3] });
  const reply = utf8.encode('{"ok":true,"data":{"status":"completed"}}');
  nc.subscribe(process.argv[4], { callback: (_e, m) => m.respond(reply) });
  await nc.flush();
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => nc.close().then(() => process.exit(0)));
  await new Promise(() => undefined);
}

// ---------------------------------------------------------------------------------------------------
const int = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
};
const cfg = {
  vms: int('BENCH_VMS', 500),
  hosts: int('BENCH_HOSTS', 20),
  seq: int('BENCH_SEQ', 200),
  warmup: int('BENCH_WARMUP', 30),
  throughput: int('BENCH_THROUGHPUT', 2000),
  inflightLevels: (process.env.BENCH_INFLIGHT ?? '8,64').split(',').map((x) => Number(x.trim())).filter((x) => Number.isInteger(x) && x > 0),
  portBase: int('BENCH_PORT_BASE', 3460),
  tap: int('BENCH_TAP', 20),
  keepLogs: process.env.BENCH_KEEP_LOGS === '1',
  switchover: process.env.BENCH_SIM_SWITCHOVER || 'steps',
};
if (!['steps', 'qemu'].includes(cfg.switchover)) throw new Error(`BENCH_SIM_SWITCHOVER must be steps or qemu, got ${cfg.switchover}`);
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const tag = `bench_cp_${process.pid}`;
const prefix = `flexmig_${tag}`;
const dbUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig');
dbUrl.pathname = `/flexmig_${tag}`;
const adminUrl = new URL(dbUrl);
adminUrl.pathname = '/postgres';
const dbName = `flexmig_${tag}`;
// the schedulers on a database of their own: PostgreSQL's count of committed transactions is then theirs alone
const schedDbName = `${dbName}_sched`;
const schedDbUrl = new URL(dbUrl);
schedDbUrl.pathname = `/${schedDbName}`;
const streamName = `${prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_EVENTS`;
const logDir = mkdtempSync(path.join(os.tmpdir(), 'flexmig-bench-cp-'));
const ports = { inventory: cfg.portBase + 1, schedA: cfg.portBase + 2, cpu: cfg.portBase + 3, schedB: cfg.portBase + 4 };
const url = (port) => `http://127.0.0.1:${port}`;
const LIMIT = '100000';
const commonEnv = { NATS_URL: natsUrl, SUBJECT_PREFIX: prefix, DATABASE_URL: dbUrl.toString(), LOG_LEVEL: 'warn' };

const say = (s = '') => process.stdout.write(`${s}\n`);
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic

// ---------------------------------------------------------------------------------------------------
// child processes, always cleaned up
const procs = new Processes({ logDir, echo: false });
const children = procs.children;
let childDied;
procs.onExit = (name, code, signal) => {
  childDied ??= new Error(`${name} exited unexpectedly (code ${code}, signal ${signal}); log: ${path.join(logDir, `${name}.log`)}`);
};
const start = (name, script, env, args = []) => procs.startNode(name, script, args, env);
function checkChildren() {
  if (childDied) throw childDied;
}
const stopAll = () => procs.stopAll();
async function waitReady(entry, port, timeoutMs = 60_000) {
  checkChildren();
  await entry.waitReady(port, timeoutMs);
}


// ---------------------------------------------------------------------------------------------------
// statistics and CPU accounting
function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const clkTck = 100;
function procCpuMs(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / clkTck;
  } catch {
    return 0;
  }
}
function pidsNamed(re) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (re.test(readFileSync(`/proc/${d}/comm`, 'utf8').trim())) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}
function machineCpu() {
  const l = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = l[3] + l[4];
  const total = l.reduce((a, b) => a + b, 0);
  return { idleMs: (idle * 1000) / clkTck, totalMs: (total * 1000) / clkTck };
}
/** CPU used by each of our children, by PostgreSQL and by nats-server between snapshot() and delta(). */
function cpuSnapshot() {
  const snap = { t: now(), m: machineCpu(), procs: {} };
  for (const c of children) snap.procs[c.name] = procCpuMs(c.pid);
  snap.procs.postgres = pidsNamed(/^postgres/).reduce((a, p) => a + procCpuMs(p), 0);
  snap.procs['nats-server'] = pidsNamed(/^nats-server/).reduce((a, p) => a + procCpuMs(p), 0);
  snap.procs['bench (this)'] = procCpuMs(process.pid);
  return snap;
}
function cpuDelta(a, b) {
  const wall = b.t - a.t;
  const rows = Object.keys(b.procs).map((k) => ({ name: k, pct: ((b.procs[k] - (a.procs[k] ?? 0)) / wall) * 100 }));
  const busy = (b.m.totalMs - a.m.totalMs - (b.m.idleMs - a.m.idleMs)) / (b.m.totalMs - a.m.totalMs);
  return { wall, rows, machineBusyPct: busy * 100 * os.cpus().length };
}

// ---------------------------------------------------------------------------------------------------
// migrations and their terminal events
const TERMINAL = new Set(['migration.completed', 'migration.failed', 'migration.rolled-back', 'migration.cancelled']);
const arrived = new Map(); // migrationId -> {type, at, data}
const waiters = new Map(); // migrationId -> resolve
const stepEvents = new Map(); // migrationId -> count of step-completed seen
let duplicateTerminal = 0;
function onEvent(m) {
  let ev;
  try {
    ev = JSON.parse(utf8.decode(m.data));
  } catch {
    return;
  }
  const id = ev.subject ?? ev.data?.migrationId;
  if (!id) return;
  if (ev.type === 'migration.step-completed') stepEvents.set(id, (stepEvents.get(id) ?? 0) + 1);
  if (!TERMINAL.has(ev.type)) return;
  if (arrived.has(id)) {
    duplicateTerminal++;
    return;
  }
  // lag: from the transition that wrote the event (its CloudEvent time, PostgreSQL's clock on this machine) to here
  const rec = { type: ev.type, at: now(), data: ev.data, lagMs: Date.now() - Date.parse(ev.time) };
  arrived.set(id, rec);
  const w = waiters.get(id);
  if (w) {
    waiters.delete(id);
    w(rec);
  }
}
function terminalOf(id, timeoutMs = 60_000) {
  const got = arrived.get(id);
  if (got) return Promise.resolve(got);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      waiters.delete(id);
      resolve({ type: 'timeout', at: now(), data: {} });
    }, timeoutMs);
    waiters.set(id, (rec) => {
      clearTimeout(t);
      resolve(rec);
    });
  });
}

// VM placement, tracked locally: every migration moves a VM to the next host of the ring
const vms = []; // {id, hostIdx, busy}
let hostIds = [];
let rr = 0;
async function migrateOne(vm) {
  const sched = rr++ % 2 === 0 ? ports.schedA : ports.schedB;
  const target = (vm.hostIdx + 1) % hostIds.length;
  const t0 = now();
  let res;
  try {
    res = await api(url(sched), 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: hostIds[target] });
  } catch (e) {
    return { ok: false, why: `POST to scheduler ${sched === ports.schedA ? 'A' : 'B'} failed: ${e.cause?.message ?? e.message}` };
  }
  const tAccepted = now();
  if (res.status !== 202) return { ok: false, why: `POST ${res.status} ${res.body?.code ?? ''} ${res.body?.message ?? JSON.stringify(res.body).slice(0, 200)}` };
  const id = res.body.id;
  const ev = await terminalOf(id);
  if (ev.type !== 'migration.completed') return { ok: false, id, why: ev.type };
  vm.hostIdx = target;
  return { ok: true, id, latency: ev.at - t0, admission: tAccepted - t0, serverTotal: ev.data?.totalTimeMs, eventLag: ev.lagMs, sched: sched === ports.schedA ? 'A' : 'B' };
}

// ---------------------------------------------------------------------------------------------------
async function main() {
  const t0 = Date.now();
  // the services check bearer tokens (the local secret of .flexmig/auth); api() sends the admin token
  Object.assign(commonEnv, (await localAuth()).env);
  for (const app of ['inventory', 'scheduler', 'cpu-compat']) readFileSync(path.join(root, 'dist/apps', app, 'main.js'));
  readFileSync(path.join(root, 'dist/apps/agent/fleet.js'));
  say(`flexmig control-plane benchmark — ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`);
  say(`  prefix ${prefix}, database ${dbName}, logs ${logDir}`);

  // fresh database
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  for (const name of [dbName, schedDbName]) {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${name}"`);
  }
  await admin.end();
  cleanup.db = true;

  const nc = await connect({ servers: natsUrl, name: 'bench-control-plane' });
  cleanup.nc = nc;
  cleanup.stream = true;
  nc.subscribe(`${prefix}.events.migration.>`, { callback: (_e, m) => onEvent(m) });

  // services; BENCH_CPU_PROF=<dir>: each writes a V8 CPU profile there when it stops (open it in Chrome's DevTools)
  const prof = process.env.BENCH_CPU_PROF ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`.trim() } : {};
  const svc = (name, app, port, extra = {}) => start(name, path.join(root, 'dist/apps', app, 'main.js'), { ...commonEnv, PORT: String(port), ...prof, ...extra });
  const cpu = svc('cpu-compat', 'cpu-compat', ports.cpu);
  const inv = svc('inventory', 'inventory', ports.inventory);
  await Promise.all([waitReady(cpu, ports.cpu), waitReady(inv, ports.inventory)]);
  const schedEnv = { MAX_OUTBOUND_PER_HOST: LIMIT, MAX_INBOUND_PER_HOST: LIMIT, MAX_PER_CLUSTER: LIMIT, DATABASE_URL: schedDbUrl.toString() };
  const sa = svc('scheduler-a', 'scheduler', ports.schedA, { ...schedEnv, SCHEDULER_ID: `${tag}-a` });
  await waitReady(sa, ports.schedA); // first one creates the schema and runs the migrations alone
  const sb = svc('scheduler-b', 'scheduler', ports.schedB, { ...schedEnv, SCHEDULER_ID: `${tag}-b` });
  await waitReady(sb, ports.schedB);
  start('fleet', path.join(root, 'dist/apps/agent/fleet.js'), {
    ...commonEnv,
    ...prof,
    FLEET_SIZE: String(cfg.hosts),
    FLEET_HOST_PREFIX: `bcp${process.pid}`,
    FLEET_CPUS: 'IvyBridge',
    CLUSTER_NAME: 'bench',
    SIM_TIME_SCALE: '0',
    SIM_MEMORY_MIB: String(256 * 1024),
    SIM_VCPUS: '1024',
    SIM_SWITCHOVER: cfg.switchover,
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    checkChildren();
    const r = await api(url(ports.inventory), 'GET', '/api/v1/hosts');
    const up = r.status === 200 ? r.body.items.filter((h) => h.state === 'up' && h.id.startsWith(`bcp${process.pid}`)) : [];
    if (up.length === cfg.hosts) {
      hostIds = up.map((h) => h.id).sort();
      break;
    }
    if (Date.now() > deadline) throw new Error(`only ${up.length} of ${cfg.hosts} fleet hosts came up within 60 s`);
    await sleep(200);
  }
  say(`  started cpu-compat, inventory, schedulers A (:${ports.schedA}) and B (:${ports.schedB}), a fleet of ${cfg.hosts} sim hosts (SIM_TIME_SCALE=0, SIM_SWITCHOVER=${cfg.switchover}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // VMs
  const tv = Date.now();
  let next = 0;
  const createErrors = [];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < cfg.vms) {
        const i = next++;
        const hostIdx = i % cfg.hosts;
        const r = await api(url(ports.inventory), 'POST', '/api/v1/vms', { name: `bench-vm-${i}`, hostId: hostIds[hostIdx], memoryMiB: 512, vcpus: 1 });
        if (r.status !== 201) createErrors.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
        else vms[i] = { id: r.body.id, hostIdx, busy: false };
      }
    }),
  );
  if (createErrors.length) throw new Error(`could not create ${createErrors.length} VMs, e.g. ${createErrors[0]}`);
  say(`  created ${cfg.vms} VMs in ${((Date.now() - tv) / 1000).toFixed(1)} s`);

  const results = {};

  // ---- 1. count what one migration costs on the wire and in PostgreSQL ----
  results.count = await countPhase(nc);

  // ---- 2. one at a time ----
  say(`  sequential: ${cfg.warmup} warm-up + ${cfg.seq} migrations, one at a time, alternating schedulers …`);
  const seq = [];
  const seqFail = [];
  for (let i = 0; i < cfg.warmup + cfg.seq; i++) {
    checkChildren();
    const r = await migrateOne(vms[i % vms.length]);
    if (!r.ok) seqFail.push(r.why);
    else if (i >= cfg.warmup) seq.push(r);
  }
  results.seq = seq;
  results.seqFail = seqFail;
  results.stepTimes = await stepBreakdown(seq.slice(-50).map((r) => r.id));

  // ---- 3. the floor, same count, same machine, right after ----
  say(`  floor: ${cfg.seq} × (9 NATS request/replies + 9 INSERT-commits) in sequence …`);
  results.floor = await floorPhase(nc, cfg.seq);

  // ---- 4. many at once ----
  reportSequential(results);
  const tps = [];
  let crashed;
  for (const inflight of cfg.inflightLevels) {
    say(`  throughput: ${cfg.throughput} migrations, ${inflight} in flight …`);
    const tp = await throughputPhase(inflight);
    tp.floor = await floorThroughput(nc, Math.min(cfg.throughput, 2000), inflight);
    reportThroughput(tp);
    tps.push(tp);
    if (childDied) {
      crashed = childDied;
      break;
    }
  }
  reportSummary(results, tps);
  if (crashed) throw crashed;
  const failed = seqFail.length + tps.reduce((a, t) => a + t.failures.length, 0);
  const total = cfg.seq + cfg.warmup + cfg.throughput * tps.length;
  if (failed > total * 0.01) throw new Error(`${failed} of ${total} migrations did not complete (e.g. ${[...seqFail, ...tps.flatMap((t) => t.failures)][0]}): the figures are not valid`);
}

/** A few migrations with a wire tap on the prefix and PostgreSQL's counters around them. */
async function countPhase(nc) {
  if (cfg.tap === 0) return undefined;
  const counts = new Map();
  const tap = nc.subscribe(`${prefix}.>`, {
    callback: (_e, m) => {
      // "<prefix>.agent.<host>.migration.step" → "agent.*.migration.step"
      const parts = m.subject.split('.').slice(1);
      if (parts[0] === 'agent') parts[1] = '*';
      if (parts[0] === 'progress') parts.length = 2;
      const k = `${parts.join('.')}${m.reply ? ' (request)' : ''}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    },
  });
  const stats = new pg.Client({ connectionString: dbUrl.toString() });
  await stats.connect();
  const read = async () => {
    await stats.query('SELECT pg_stat_clear_snapshot()');
    const r = await stats.query(
      `SELECT sum(xact_commit)::bigint AS c, sum(tup_inserted)::bigint AS i, sum(tup_updated)::bigint AS u, sum(tup_deleted)::bigint AS d,
              sum(xact_commit) FILTER (WHERE datname = $2)::bigint AS s
         FROM pg_stat_database WHERE datname = ANY($1)`,
      [[dbName, schedDbName], schedDbName],
    );
    return Object.fromEntries(Object.entries(r.rows[0]).map(([k, v]) => [k, Number(v)]));
  };
  // PostgreSQL 15 writes an idle backend's counters to pg_stat_database within 10 s (PGSTAT_IDLE_INTERVAL):
  // every read waits that long after the work it counts
  const statsDelayMs = 11_000;
  // background (heartbeats, reconcile loops) over an idle interval first
  await sleep(statsDelayMs);
  const idle0 = await read();
  const ti0 = now();
  counts.clear();
  await sleep(statsDelayMs);
  const idle1 = await read();
  const idleMs = now() - ti0;
  const idleCounts = new Map(counts);
  counts.clear();
  // the tapped migrations
  const a0 = await read();
  const ta0 = now();
  for (let i = 0; i < cfg.tap; i++) {
    const r = await migrateOne(vms[(i * 7) % vms.length]);
    if (!r.ok) throw new Error(`a migration failed while counting: ${r.why}`);
  }
  const busyMs = now() - ta0;
  await sleep(statsDelayMs);
  const a1 = await read();
  const totalMs = now() - ta0;
  tap.unsubscribe();
  await stats.end();
  const scale = totalMs / idleMs;
  const per = (k) => ((a1[k] - a0[k]) - (idle1[k] - idle0[k]) * scale) / cfg.tap;
  const rows = [...counts.entries()].map(([k, v]) => ({ subject: k, perMigration: (v - (idleCounts.get(k) ?? 0) * scale) / cfg.tap })).filter((r) => r.perMigration > 0.05);
  rows.sort((x, y) => y.perMigration - x.perMigration);
  return { n: cfg.tap, busyMs, xacts: per('c'), schedulerXacts: per('s'), inserted: per('i'), updated: per('u'), deleted: per('d'), subjects: rows };
}

/** Per-step durations as the scheduler recorded them (GET), averaged over a sample. */
async function stepBreakdown(ids) {
  const per = new Map();
  for (let i = 0; i < ids.length; i++) {
    const r = await api(url(i % 2 ? ports.schedB : ports.schedA), 'GET', `/api/v1/migrations/${ids[i]}`);
    if (r.status !== 200) continue;
    const m = r.body;
    const created = Date.parse(m.createdAt);
    let prevEnd = created;
    for (const st of m.steps) {
      const e = per.get(st.number) ?? { name: st.name, dur: [], gap: [] };
      e.dur.push(st.durationMs ?? NaN);
      if (st.startedAt) e.gap.push(Date.parse(st.startedAt) - prevEnd);
      if (st.endedAt) prevEnd = Date.parse(st.endedAt);
      per.set(st.number, e);
    }
    const e = per.get('finish') ?? { name: 'finished − step 9 end', dur: [], gap: [] };
    if (m.finishedAt) e.dur.push(Date.parse(m.finishedAt) - prevEnd);
    per.set('finish', e);
  }
  return per;
}

const floorPayload = JSON.stringify({
  migrationId: randomUUID(),
  step: 2,
  stepName: 'transfer-config',
  attempt: 1,
  role: 'target',
  vm: { id: randomUUID(), name: 'bench-vm-0', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' },
  sourceHostId: 'bcp-001',
  targetHostId: 'bcp-002',
  targetAddress: '127.0.0.1:49152',
  policy: { downtimeLimitMs: 300, completionTimeoutPerGiBSec: 150, progressTimeoutSec: 150, autoConverge: true, postCopy: false },
});

let responder;
async function startFloor(nc) {
  const subject = `${prefix}.floor.echo`;
  responder ??= startResponder(subject);
  await responder;
  const pool = new pg.Pool({ connectionString: dbUrl.toString(), max: 10 });
  await pool.query(`CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, migration_id uuid NOT NULL, step int NOT NULL, data jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
  const payload = utf8.encode(floorPayload);
  const oneMigration = async (client) => {
    const id = randomUUID();
    for (let s = 1; s <= 9; s++) {
      await client.query('INSERT INTO bench_floor (migration_id, step, data) VALUES ($1, $2, $3)', [id, s, floorPayload]); // one statement = one commit
      await nc.request(subject, payload, { timeout: 5000 });
    }
  };
  return { pool, oneMigration, subject };
}

async function startResponder(subject) {
  const r = start('floor-responder', fileURLToPath(import.meta.url), {}, ['--responder', natsUrl, subject]);
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the floor responder did not start')), 10_000);
    r.child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

async function floorPhase(nc, n) {
  const { pool, oneMigration, subject } = await startFloor(nc);
  const client = await pool.connect();
  // warm up, then the floor per migration, and the two primitives alone
  for (let i = 0; i < 20; i++) await oneMigration(client);
  const perMig = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    await oneMigration(client);
    perMig.push(now() - t);
  }
  const rrs = [];
  const commits = [];
  for (let i = 0; i < 1000; i++) {
    let t = now();
    await nc.request(subject, utf8.encode(floorPayload), { timeout: 5000 });
    rrs.push(now() - t);
    t = now();
    await client.query('INSERT INTO bench_floor (migration_id, step, data) VALUES ($1, $2, $3)', [randomUUID(), 0, floorPayload]);
    commits.push(now() - t);
  }
  client.release();
  await pool.end();
  return { perMig, rrs, commits };
}

async function floorThroughput(nc, n, inflight) {
  const { pool, oneMigration } = await startFloor(nc);
  let next = 0;
  const t = now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        next++;
        // like the scheduler: a pooled connection per statement, so 64 chains share 10 connections
        await oneMigration(pool);
      }
    }),
  );
  const wall = now() - t;
  await pool.end();
  return { n, wall, rate: (n * 1000) / wall };
}

async function throughputPhase(inflight) {
  const queue = [...vms];
  const lat = [];
  const failures = [];
  let done = 0;
  const completedAt = [];
  // outbox depth and driven migrations, sampled: is the event stream keeping up with the sagas?
  const probe = new pg.Client({ connectionString: schedDbUrl.toString() });
  await probe.connect();
  const samples = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        const q = await probe.query(
          `SELECT (SELECT count(*) FROM scheduler.outbox)::int AS outbox,
                  (SELECT count(*) FROM scheduler.migrations WHERE state NOT IN ('completed','rolled-back','cancelled','failed-needs-attention','queued'))::int AS driven`,
        );
        samples.push(q.rows[0]);
      } catch {
        /* schema may differ */
      }
      await sleep(250);
    }
  })();
  const c0 = cpuSnapshot();
  const t = now();
  let started = 0;
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (started < cfg.throughput && !childDied) {
        started++;
        const vm = queue.shift(); // a VM is never in two migrations at once: it returns to the queue's end when done
        const r = await migrateOne(vm);
        queue.push(vm);
        done++;
        if (r.ok) {
          lat.push(r);
          completedAt.push(now() - t);
        } else failures.push(r.why);
      }
    }),
  );
  const wall = now() - t;
  const cpu = cpuDelta(c0, cpuSnapshot());
  sampling = false;
  // from the request's admission to the migration's start, as the sagas recorded them: the queue and the dispatch lock
  let starts = [];
  try {
    const q = await probe.query(
      `SELECT (saga->>'startedAt')::float8 - (saga->>'createdAt')::float8 AS wait FROM scheduler.migrations
        WHERE state = 'completed' AND created_at >= now() - make_interval(secs => $1)`,
      [(now() - t) / 1000],
    );
    starts = q.rows.map((r) => r.wait);
  } catch {
    /* schema may differ */
  }
  await sampler;
  await probe.end();
  // steady state: the middle 80 % of completions (leaves out ramp-up and drain)
  const a = completedAt[Math.floor(completedAt.length * 0.1)];
  const b = completedAt[Math.floor(completedAt.length * 0.9)];
  const steady = ((Math.floor(completedAt.length * 0.9) - Math.floor(completedAt.length * 0.1)) * 1000) / (b - a);
  return { inflight, wall, completed: lat.length, rate: (lat.length * 1000) / wall, steady, lat, failures, cpu, done, crashed: childDied?.message, samples, starts };
}

// ---------------------------------------------------------------------------------------------------
const row = (cells, widths) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
function reportSequential(r) {
  const w = [44, 9, 9, 9];
  say('');
  if (r.count) {
    const c = r.count;
    say(`What one migration costs (counted over ${c.n} migrations with a wire tap; background rate subtracted):`);
    for (const s of c.subjects) say(`  ${s.subject.padEnd(52)} ${f1(s.perMigration).padStart(6)}`);
    say(`  PostgreSQL transactions in the bench databases ${f1(c.xacts).padStart(12)}   (rows inserted ${f1(c.inserted)}, updated ${f1(c.updated)}, deleted ${f1(c.deleted)})`);
    say(`    of which the schedulers' database ${f1(c.schedulerXacts).padStart(18)}   (goal ≤ 11: ${c.schedulerXacts <= 11 ? 'met' : 'NOT met'}; the rest is inventory's)`);
    say('');
  }
  const seqLat = r.seq.map((x) => x.latency);
  const seqSrv = r.seq.map((x) => x.serverTotal).filter(Number.isFinite);
  const seqAdm = r.seq.map((x) => x.admission);
  const fl = r.floor.perMig;
  say(`Sequential (one migration at a time, ${r.seq.length} measured after ${cfg.warmup} warm-up, alternating schedulers A/B):`);
  say(row(['ms per migration', 'p50', 'p99', 'mean'], w));
  say(row(['overhead: POST → migration.completed event', f2(quantile(seqLat, 0.5)), f2(quantile(seqLat, 0.99)), f2(mean(seqLat))], w));
  say(row(['  of which POST → 202 (admission)', f2(quantile(seqAdm, 0.5)), f2(quantile(seqAdm, 0.99)), f2(mean(seqAdm))], w));
  say(row(['  scheduler-recorded total (created→done)', f2(quantile(seqSrv, 0.5)), f2(quantile(seqSrv, 0.99)), f2(mean(seqSrv))], w));
  say(row(['floor: 9 NATS req/reply + 9 INSERT-commits', f2(quantile(fl, 0.5)), f2(quantile(fl, 0.99)), f2(mean(fl))], w));
  say(row(['  one NATS request/reply (1000×)', f2(quantile(r.floor.rrs, 0.5)), f2(quantile(r.floor.rrs, 0.99)), f2(mean(r.floor.rrs))], w));
  say(row(['  one INSERT + commit (1000×)', f2(quantile(r.floor.commits, 0.5)), f2(quantile(r.floor.commits, 0.99)), f2(mean(r.floor.commits))], w));
  const ratio = quantile(seqLat, 0.5) / quantile(fl, 0.5);
  r.ratio = ratio;
  say(`  ratio overhead p50 / floor p50 = ${f2(ratio)}   (goal ≤ 2.00: ${ratio <= 2 ? 'met' : 'NOT met'})`);
  if (r.count) {
    const c = r.count;
    const req = c.subjects.filter((s) => s.subject.endsWith('(request)')).reduce((a, s) => a + s.perMigration, 0);
    const est = req * quantile(r.floor.rrs, 0.5) + c.xacts * quantile(r.floor.commits, 0.5);
    say(`  counted cost at floor prices: ${f1(req)} requests × ${f2(quantile(r.floor.rrs, 0.5))} + ${f1(c.xacts)} transactions × ${f2(quantile(r.floor.commits, 0.5))} = ${f2(est)} ms (if all were in sequence and one round trip each)`);
  }
  if (r.seqFail.length) say(`  ${r.seqFail.length} sequential migrations did not complete, e.g. ${r.seqFail[0]}`);
  say('');
  if (r.stepTimes?.size) {
    say(`Where the time goes (scheduler-recorded, mean over the last ${Math.min(50, r.seq.length)} sequential migrations; a step's duration runs from the commit that issued it to the apply of its reply):`);
    for (const [k, e] of r.stepTimes) say(`  ${String(k === 'finish' ? '' : `${k}.`).padEnd(3)} ${e.name.padEnd(24)} ${f2(mean(e.dur.filter(Number.isFinite))).padStart(7)} ms${e.gap.length ? `   (gap before: ${f2(mean(e.gap))} ms)` : ''}`);
    say('');
  }
}

function reportThroughput(tp) {
  const tl = tp.lat.map((x) => x.latency);
  say(`Throughput (${cfg.throughput} migrations, ${tp.inflight} in flight, two scheduler replicas, ${cfg.hosts} hosts, ${cfg.vms} VMs):`);
  say(`  completed ${tp.completed} in ${(tp.wall / 1000).toFixed(2)} s = ${f1(tp.rate)} migrations/s (steady middle 80 %: ${f1(tp.steady)}/s)   (goal ≥ 200/s: ${tp.rate >= 200 ? 'met' : 'NOT met'})`);
  say(`  latency under load: p50 ${f1(quantile(tl, 0.5))} ms, p99 ${f1(quantile(tl, 0.99))} ms; per replica A ${tp.lat.filter((x) => x.sched === 'A').length}, B ${tp.lat.filter((x) => x.sched === 'B').length}`);
  say(`  floor at the same concurrency (${tp.floor.n} × 9 req/reply + 9 commits, ${tp.inflight} chains, 10 PG connections): ${f1(tp.floor.rate)} "migrations"/s`);
  const srv = tp.lat.map((x) => x.serverTotal).filter(Number.isFinite);
  say(`  scheduler-recorded total (created→completed) under load: p50 ${f1(quantile(srv, 0.5))} ms, p99 ${f1(quantile(srv, 0.99))} ms`);
  const adm = tp.lat.map((x) => x.admission);
  const lag = tp.lat.map((x) => x.eventLag).filter(Number.isFinite);
  say(`  of the rest: POST → 202 p50 ${f1(quantile(adm, 0.5))} ms, p99 ${f1(quantile(adm, 0.99))} ms; the completed event's commit → its arrival here p50 ${f1(quantile(lag, 0.5))} ms, p99 ${f1(quantile(lag, 0.99))} ms`);
  if (tp.starts.length) say(`  created → started (admission's transaction, the queue, the dispatch lock): p50 ${f1(quantile(tp.starts, 0.5))} ms, p90 ${f1(quantile(tp.starts, 0.9))} ms`);
  if (tp.samples.length) {
    const ob = tp.samples.map((x) => x.outbox);
    const dr = tp.samples.map((x) => x.driven);
    say(`  outbox rows waiting: mean ${f1(mean(ob))}, max ${Math.max(...ob)}; migrations being driven: mean ${f1(mean(dr))}, max ${Math.max(...dr)} (sampled every 250 ms)`);
  }
  if (tp.crashed) {
    say(`  !! ${tp.crashed}`);
    const log = children.find((c) => tp.crashed.includes(c.logFile))?.logFile;
    if (log) {
      const lines = readFileSync(log, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => /Error|ERROR/.test(l));
      for (const l of [...new Set(lines)].slice(0, 4)) say(`     ${l.slice(0, 200)}`);
    }
  }
  if (tp.failures.length) say(`  ${tp.failures.length} did not complete, e.g. ${tp.failures[0]}`);
  say(`  CPU during the throughput phase (% of one core; the machine has ${os.cpus().length}; machine busy ${f1(tp.cpu.machineBusyPct)} %):`);
  for (const x of tp.cpu.rows.sort((a, b) => b.pct - a.pct)) if (x.pct >= 0.5) say(`    ${x.name.padEnd(16)} ${f1(x.pct).padStart(6)} %`);
  if (duplicateTerminal) say(`  (terminal events seen more than once on core NATS: ${duplicateTerminal} — each replica may publish the same outbox row; JetStream de-duplicates by id)`);
  say('');
}

function reportSummary(r, tps) {
  const w = [40, 12, 12, 8];
  say('Summary');
  say(row(['', 'measured', 'goal', ''], w));
  say(row(['overhead p50 / floor p50 (sequential)', `${f2(r.ratio)}×`, '≤ 2×', r.ratio <= 2 ? 'met' : 'NOT met'], w));
  for (const tp of tps) say(row([`throughput, 2 replicas, ${tp.inflight} in flight`, tp.crashed ? 'crashed' : `${f1(tp.rate)}/s`, '≥ 200/s', !tp.crashed && tp.rate >= 200 ? 'met' : 'NOT met'], w));
}

// ---------------------------------------------------------------------------------------------------
const cleanup = { db: false, nc: undefined, stream: false };
let cleaning;
async function doCleanup() {
  cleaning ??= (async () => {
    await stopAll();
    if (cleanup.nc) {
      if (cleanup.stream) {
        try {
          await (await jetstreamManager(cleanup.nc)).streams.delete(streamName);
        } catch {
          /* not created */
        }
      }
      await cleanup.nc.close().catch(() => undefined);
    }
    if (cleanup.db) {
      const admin = new pg.Client({ connectionString: adminUrl.toString() });
      try {
        await admin.connect();
        for (const name of [dbName, schedDbName]) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } catch (e) {
        console.error(`could not drop ${dbName} and ${schedDbName}: ${e.message}`);
      } finally {
        await admin.end().catch(() => undefined);
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping the services and dropping ${dbName} …`);
    doCleanup().finally(() => process.exit(130));
  });
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(`\nbenchmark failed: ${e.stack ?? e}`);
  console.error(`service logs: ${logDir}`);
  code = 1;
}
await doCleanup();
if (code === 0 && !cfg.keepLogs) rmSync(logDir, { recursive: true, force: true });
process.exit(code);
