#!/usr/bin/env node
// Scale benchmark (issue 11, item 7): a fleet of sim hosts (1,000 by default) and 10,000 VMs. It measures
// the VM creation rate and the CPU per VM of inventory and cpu-compat (beside a 20-host run in the same
// process tree), the latency of every page of every list, the heartbeats' cost while idle, and the
// makespan of evacuating one host and ten hosts, each against its lower bound. Prints a table.
//
//   npm run build && node bench/scale/run.mjs
//   BENCH_HOSTS=100 BENCH_VMS=1000 node bench/scale/run.mjs      # a quick run
//
// Its own database (created fresh, dropped at the end) and subject prefix: a running `npm start` or test
// suite is not disturbed. Exits non-zero only when the benchmark could not run; a missed goal is reported.
// Knobs (environment): BENCH_HOSTS [1000], BENCH_VMS [10000], BENCH_SMALL_HOSTS [20], BENCH_SMALL_VMS [500],
// BENCH_INFLIGHT [32], BENCH_IDLE_S [20], BENCH_EVAC_HOSTS [10], BENCH_PAGE_WALKS [20] (each list walked to its end that many times), BENCH_SIM_TIME_SCALE [1],
// BENCH_PORT_BASE [3480], BENCH_KEEP_LOGS=1, BENCH_CPU_PROF=<dir> (a CPU profile of each service and fleet), NATS_URL, DATABASE_URL,
// BENCH_HTTP_CLIENT [node] (node: node:http with keep-alive; fetch: Node's fetch, about three times the client's CPU per
// request, which this machine's two cores then do not spend on the services: the table shows the bench's own share),
// BENCH_PAUSES=1 (each process, the bench's own included, notes its garbage collections and event-loop stalls of 4 ms
// or more, bench/pauses.cjs; the report puts the slowest pages beside the pauses they overlapped),
// BENCH_EVAC_TIMELINE=<file> (every migration of the evacuations and the ones alone, as the API shows them, in one JSON file),
// BENCH_POLL_MS [50] (how often the bench asks whether an evacuation has ended: the makespan's end is the scheduler's
// own time, so the interval only sets the bench's load; a migration alone is asked about every 20 ms: docs/scale.md).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { api, apiKeepAlive, clockMs, localAuth, Processes, sleep } from '../../scripts/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const pgLib = require('pg');

const int = (name, def) => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
};
const cfg = {
  hosts: int('BENCH_HOSTS', 1000),
  vms: int('BENCH_VMS', 10_000),
  smallHosts: int('BENCH_SMALL_HOSTS', 20),
  smallVms: int('BENCH_SMALL_VMS', 500),
  inflight: int('BENCH_INFLIGHT', 32),
  idleS: int('BENCH_IDLE_S', 20),
  evacHosts: int('BENCH_EVAC_HOSTS', 10),
  pageWalks: Math.max(1, int('BENCH_PAGE_WALKS', 20)),
  timeScale: Number(process.env.BENCH_SIM_TIME_SCALE ?? '1'),
  portBase: int('BENCH_PORT_BASE', 3480),
  keepLogs: process.env.BENCH_KEEP_LOGS === '1',
  httpClient: process.env.BENCH_HTTP_CLIENT ?? 'node',
  pauses: process.env.BENCH_PAUSES === '1',
  evacTimeline: process.env.BENCH_EVAC_TIMELINE || undefined,
  pollMs: int('BENCH_POLL_MS', 50),
};
if (!['node', 'fetch'].includes(cfg.httpClient)) throw new Error(`BENCH_HTTP_CLIENT must be node or fetch, got ${cfg.httpClient}`);
const request = cfg.httpClient === 'fetch' ? api : apiKeepAlive;
const limits = { outPerHost: 2, perCluster: 5 }; // the scheduler's defaults, set explicitly below
const natsUrl = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const tag = `bench_scale_${process.pid}`;
const prefix = `flexmig_${tag}`;
const dbName = `flexmig_${tag}`;
const dbUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/flexmig');
dbUrl.pathname = `/${dbName}`;
const adminUrl = new URL(dbUrl);
adminUrl.pathname = '/postgres';
const streamName = `${prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_EVENTS`;
const logDir = mkdtempSync(path.join(os.tmpdir(), 'flexmig-bench-scale-'));
const pausesDir = path.join(logDir, 'pauses');
if (cfg.pauses) {
  process.env.BENCH_PAUSES_DIR = pausesDir; // this process's own, and its children's through commonEnv
  require(path.join(here, '../pauses.cjs'));
}
const ports = { inventory: cfg.portBase + 1, scheduler: cfg.portBase + 2, cpu: cfg.portBase + 3 };
const inv = `http://127.0.0.1:${ports.inventory}`;
const sched = `http://127.0.0.1:${ports.scheduler}`;
const commonEnv = { NATS_URL: natsUrl, SUBJECT_PREFIX: prefix, DATABASE_URL: dbUrl.toString(), LOG_LEVEL: 'warn' };
const nodeOptions = [process.env.NODE_OPTIONS ?? ''];
if (cfg.pauses) {
  commonEnv.BENCH_PAUSES_DIR = pausesDir;
  nodeOptions.push(`--require "${path.join(here, '../pauses.cjs')}"`);
}
// BENCH_CPU_PROF=<dir>: each service writes a V8 CPU profile there when it stops (open it in Chrome's DevTools)
if (process.env.BENCH_CPU_PROF) nodeOptions.push(`--cpu-prof --cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`);
if (nodeOptions.join(' ').trim()) commonEnv.NODE_OPTIONS = nodeOptions.join(' ').trim();
const say = (s = '') => process.stdout.write(`${s}\n`);
const now = clockMs;
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '—');

// ---- processes ----
const procs = new Processes({ logDir, echo: false });
let childDied;
procs.onExit = (name, code, signal) => (childDied ??= new Error(`${name} exited unexpectedly (code ${code}, signal ${signal}); log: ${path.join(logDir, `${name}.log`)}`));
const check = () => {
  if (childDied) throw childDied;
};

// ---- CPU accounting from /proc ----
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
const natsPids = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d) && (() => { try { return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === 'nats-server'; } catch { return false; } })());
let pgAdmin;
/** The PostgreSQL backends serving this benchmark's database (not the other users of the server), with the service each serves (its `application_name`). */
async function ourBackends() {
  return (await pgAdmin.query('SELECT pid, application_name AS app FROM pg_stat_activity WHERE datname = $1', [dbName])).rows;
}
async function cpuSnapshot() {
  const snap = { t: now(), procs: {} };
  for (const c of procs.children) snap.procs[c.name] = procCpuMs(c.pid);
  snap.pg = new Map((await ourBackends()).map((r) => [r.pid, { app: r.app, ms: procCpuMs(r.pid) }]));
  snap.procs['nats-server (shared)'] = natsPids().reduce((a, p) => a + procCpuMs(p), 0);
  snap.self = procCpuMs(process.pid);
  return snap;
}
/**
 * ms of CPU per process between two snapshots; PostgreSQL: our database's backends alive at the second,
 * all of them, and (`pgInventory`, part of that) those serving inventory (`flexmig-inventory`).
 */
function cpuDelta(a, b) {
  const out = { wallMs: b.t - a.t, ms: {} };
  for (const k of Object.keys(b.procs)) out.ms[k] = b.procs[k] - (a.procs[k] ?? 0);
  let pg = 0;
  let pgInventory = 0;
  for (const [pid, { app, ms }] of b.pg) {
    const d = ms - (a.pg.get(pid)?.ms ?? 0);
    pg += d;
    if (app === 'flexmig-inventory') pgInventory += d; // libs/persistence applicationNameOf('inventory')
  }
  out.ms['postgres (this db)'] = pg;
  out.pgInventory = pgInventory;
  out.self = b.self - a.self;
  return out;
}
/**
 * inventory's `hosts` table from PostgreSQL's statistics: its size, and its row updates so far (all, and
 * heap-only: those that stayed in their page and wrote no index entry). Every heartbeat updates its host's row.
 */
async function hostsTable() {
  const c = new pgLib.Client({ connectionString: dbUrl.toString() });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const { rows } = await c.query(
      `SELECT pg_relation_size(relid)::float8 AS bytes, n_tup_upd::float8 AS updates, n_tup_hot_upd::float8 AS hot
       FROM pg_stat_user_tables WHERE schemaname = 'inventory' AND relname = 'hosts'`,
    );
    return rows[0];
  } finally {
    await c.end();
  }
}
function loadavg() {
  return os.loadavg().map((x) => x.toFixed(2)).join(' / ');
}

// ---- helpers ----
/** A request (`BENCH_HTTP_CLIENT`), asked again (20 times at most, about a minute) when the answer is a retryable 503 or none (a loaded machine: PostgreSQL slow to give a connection). */
let retried = 0;
async function call(base, method, route, body) {
  for (let attempt = 1; ; attempt++) {
    const r = await request(base, method, route, body).catch((e) => {
      if (attempt >= 20) throw e;
      return { status: 0, body: { retryable: true, message: e.message } }; // the service did not answer (busy): ask again
    });
    if ((r.status !== 503 && r.status !== 0) || !r.body?.retryable || attempt >= 20) return r;
    retried++;
    await sleep(Math.min(200 * attempt, 3_000));
  }
}
async function must(base, method, route, body, ok = [200, 201, 202]) {
  const r = await call(base, method, route, body);
  if (!ok.includes(r.status)) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
}
async function allPages(base, route) {
  const items = [];
  let cursor;
  do {
    const sep = route.includes('?') ? '&' : '?';
    const page = await must(base, 'GET', `${route}${sep}limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}
function quantile(xs, q) {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
function startFleet(name, size, hostPrefix, clusterName, cpus) {
  return procs.startNode(name, path.join(root, 'dist/apps/agent/fleet.js'), [], {
    ...commonEnv,
    FLEET_SIZE: String(size),
    FLEET_HOST_PREFIX: hostPrefix,
    FLEET_CPUS: cpus,
    CLUSTER_NAME: clusterName,
    SIM_TIME_SCALE: String(cfg.timeScale),
  });
}
async function waitHostsUp(hostPrefix, n, timeoutMs) {
  const t0 = now();
  for (;;) {
    check();
    const up = (await allPages(inv, '/api/v1/hosts')).filter((h) => h.state === 'up' && h.id.startsWith(`${hostPrefix}-`));
    if (up.length === n) return { ids: up.map((h) => h.id).sort(), clusterId: up[0].clusterId, ms: now() - t0 };
    if (now() - t0 > timeoutMs) throw new Error(`only ${up.length} of ${n} hosts of ${hostPrefix} came up within ${timeoutMs / 1000} s`);
    await sleep(n > 100 ? 2_000 : 250);
  }
}

/** Creates `count` VMs round-robin on `hostIds`, `cfg.inflight` at a time; the rate and the CPU per VM. */
async function createVms(label, hostIds, count) {
  const before = await cpuSnapshot();
  const t0 = now();
  let next = 0;
  let done = 0;
  const errors = [];
  const lat = [];
  const progress = setInterval(() => say(`    ${label}: ${done} of ${count} VMs (${f1(done / ((now() - t0) / 1000))}/s)`), 10_000);
  try {
    await Promise.all(
      Array.from({ length: cfg.inflight }, async () => {
        while (next < count && errors.length < 10) {
          const i = next++;
          const s = now();
          const r = await call(inv, 'POST', '/api/v1/vms', { name: `${label}-${i}`, hostId: hostIds[i % hostIds.length], memoryMiB: 512, vcpus: 1 });
          lat.push(now() - s);
          if (r.status !== 201) errors.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
          done++;
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  if (errors.length) throw new Error(`${label}: ${errors.length} VM creations failed, e.g. ${errors[0]}`);
  const wall = now() - t0;
  const d = cpuDelta(before, await cpuSnapshot());
  return {
    count,
    perSecond: count / (wall / 1000),
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
    cpuPerVm: { inventory: d.ms.inventory / count, 'cpu-compat': d.ms['cpu-compat'] / count, postgres: d.ms['postgres (this db)'] / count },
    // every process of the run, the bench's own (its HTTP client) included: what the two cores spend per VM
    cpuPerVmByProcess: { ...Object.fromEntries(Object.entries(d.ms).map(([k, ms]) => [k, ms / count])), 'bench (its client)': d.self / count },
  };
}

/**
 * Every page of a list, one after another (limit given), timed from the request to the parsed answer; the
 * list is walked to its end `cfg.pageWalks` times: a list of 1,020 hosts in pages of 1,000 is two pages a
 * walk, too few samples for a p50 from one walk.
 */
/** The slowest pages of every list, with their wall-clock start: BENCH_PAUSES=1 puts each beside the pauses it overlapped. */
const slowPages = [];
function notePage(p) {
  if (slowPages.length === 5 && p.ms <= slowPages[4].ms) return;
  slowPages.push(p);
  slowPages.sort((a, b) => b.ms - a.ms);
  slowPages.length = Math.min(slowPages.length, 5);
}

async function timePages(base, route, limit) {
  const lat = [];
  let items = 0;
  // where the slowest page was: a first page of a walk (a statement text new to a connection) or any page (a pause)
  let slowest = { ms: -1, walk: 0, page: 0 };
  let slowestParsed = -1; // the same, to the end of the bench's JSON.parse of the page: the client's share beside the API's
  for (let walk = 0; walk < cfg.pageWalks; walk++) {
    let cursor;
    items = 0;
    let page = 0;
    do {
      const sep = route.includes('?') ? '&' : '?';
      const s = now();
      const at = Date.now();
      const r = await call(base, 'GET', `${route}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      // a page's latency is the API's: from the request to its last byte (curl's time_total), not the client's parsing
      const ms = r.receivedMs - s;
      slowestParsed = Math.max(slowestParsed, now() - s);
      lat.push(ms);
      page++;
      if (ms > slowest.ms) slowest = { ms, walk: walk + 1, page };
      notePage({ route: `${route} (limit ${limit})`, where: `page ${page} of walk ${walk + 1}`, at, ms });
      if (r.status !== 200) throw new Error(`GET ${route}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      items += r.body.items.length;
      cursor = r.body.nextCursor;
    } while (cursor);
  }
  return { route: `${route} (limit ${limit})`, pages: lat.length, items, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: slowest.ms, maxAt: `page ${slowest.page} of walk ${slowest.walk}`, maxParsed: slowestParsed };
}

/** One of a cluster's views asked BENCH_PAGE_WALKS times in a row (at least 5): its latency to the last byte, and its size. */
async function timeView(label, method, route, body) {
  const lat = [];
  let bytes = 0;
  let hosts = 0;
  for (let i = 0; i < Math.max(5, cfg.pageWalks); i++) {
    const s = now();
    const r = await call(inv, method, route, body);
    lat.push(r.receivedMs - s);
    if (r.status !== 200) throw new Error(`${method} ${route}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    bytes = JSON.stringify(r.body).length;
    hosts = (r.body.hosts ?? r.body.hostModes ?? []).length;
  }
  return { label, hosts, kib: bytes / 1024, p50: quantile(lat, 0.5), max: Math.max(...lat) };
}

/**
 * BENCH_PAUSES=1: the pauses each process wrote (bench/pauses.cjs) from `sinceMs` until now, summed by process and kind,
 * and those that overlapped each of the slowest pages.
 */
async function pausesBeside(pages, sinceMs) {
  const untilMs = Date.now();
  await sleep(1_500); // the processes write their pauses once a second
  const names = new Map([[process.pid, 'bench'], ...procs.children.map((c) => [c.pid, c.name])]);
  const all = [];
  for (const f of readdirSync(pausesDir)) {
    const pid = Number(path.basename(f, '.jsonl'));
    for (const line of readFileSync(path.join(pausesDir, f), 'utf8').split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line);
      if (e.kind !== 'process' && e.at >= sinceMs && e.at - e.ms <= untilMs) all.push({ ...e, who: names.get(pid) ?? `pid ${pid}` });
    }
  }
  const summary = {};
  for (const e of all) {
    const k = `${e.who} ${e.kind === 'gc' ? `gc ${e.gc}` : 'stall'}`;
    const s = (summary[k] ??= { n: 0, maxMs: 0, totalMs: 0 });
    s.n++;
    s.maxMs = Math.max(s.maxMs, e.ms);
    s.totalMs += e.ms;
  }
  const beside = pages.map((p) => ({
    ...p,
    // a pause that overlapped the page by a millisecond or more (the clock of `at` counts whole milliseconds)
    pauses: all
      .map((e) => ({ e, overlap: Math.min(e.at, p.at + p.ms) - Math.max(e.at - e.ms, p.at) }))
      .filter(({ overlap }) => overlap >= 1)
      .map(({ e, overlap }) => `${e.who} ${e.kind === 'gc' ? `gc ${e.gc}` : 'stall'} ${f1(e.ms)} ms (${f1(overlap)} of it in the page)`),
  }));
  return { summary, beside };
}

async function migrationDone(id, timeoutMs = 120_000) {
  const t0 = now();
  for (;;) {
    const m = await must(sched, 'GET', `/api/v1/migrations/${id}`);
    if (m.finishedAt) return m;
    if (now() - t0 > timeoutMs) throw new Error(`migration ${id} did not finish within ${timeoutMs / 1000} s (state ${m.state})`);
    // often: an idle machine is slower to wake (a migration alone took 546–595 ms asked every 250 ms, 531–549
    // ms every 20 ms, four runs each), and the bound is the fastest one migration alone runs (docs/scale.md)
    await sleep(20);
  }
}
/**
 * Where an evacuation's makespan went, from its migrations: when the last one was asked for (the requests
 * themselves: placement, prediction, admission), each one's wait from its request to its first step, its
 * run from there to its end, and how many ran at once on average (the sum of the runs over the span); and
 * `lastEnd`, when the last of them ended (the scheduler's clock, this machine's: the makespan's end, exact
 * whenever the bench polls).
 */
async function whereTheTimeWent(t0, evacuations) {
  const ids = evacuations.flatMap((e) => e.vms.map((v) => v.migrationId).filter(Boolean));
  const ms = await Promise.all(ids.map((id) => must(sched, 'GET', `/api/v1/migrations/${id}`)));
  const started = (m) => Date.parse(m.steps.find((st) => st.startedAt)?.startedAt ?? m.createdAt);
  const lastAsked = Math.max(...ms.map((m) => Date.parse(m.createdAt))) - t0;
  const waits = ms.map((m) => started(m) - Date.parse(m.createdAt));
  const runs = ms.filter((m) => m.finishedAt).map((m) => Date.parse(m.finishedAt) - started(m));
  const lastEnd = Math.max(...ms.map((m) => Date.parse(m.finishedAt ?? m.updatedAt)));
  const span = lastEnd - Math.min(...ms.map(started));
  const sum = runs.reduce((a, b) => a + b, 0);
  return { lastEnd, text: `last asked for at ${f1(lastAsked)} ms; wait p50 ${f1(quantile(waits, 0.5))} ms, run p50 ${f1(quantile(runs, 0.5))} ms (p99 ${f1(quantile(runs, 0.99))}); ${f2(sum / span)} running at once on average` };
}

async function evacuationDone(id, timeoutMs = 600_000) {
  const t0 = now();
  for (;;) {
    const e = await must(sched, 'GET', `/api/v1/evacuations/${id}`);
    if (e.state !== 'running') return e;
    if (now() - t0 > timeoutMs) throw new Error(`evacuation ${id} did not finish within ${timeoutMs / 1000} s (${JSON.stringify(e.counts)})`);
    await sleep(cfg.pollMs);
  }
}
const spanMs = (x) => Date.parse(x.finishedAt) - Date.parse(x.createdAt);

// ---------------------------------------------------------------------------------------------------
async function main() {
  Object.assign(commonEnv, (await localAuth()).env);
  for (const app of ['inventory', 'scheduler', 'cpu-compat']) readFileSync(path.join(root, 'dist/apps', app, 'main.js'));
  readFileSync(path.join(root, 'dist/apps/agent/fleet.js'));
  say(`flexmig scale benchmark — ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), node ${process.version}, load average at start ${loadavg()}`);
  say(`  ${cfg.hosts} hosts, ${cfg.vms} VMs (beside ${cfg.smallHosts} hosts, ${cfg.smallVms} VMs), ${cfg.inflight} creations in flight, SIM_TIME_SCALE=${cfg.timeScale}, HTTP client ${cfg.httpClient}; database ${dbName}, logs ${logDir}`);
  const admin = new pgLib.Client({ connectionString: adminUrl.toString() });
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${dbName}"`);
  cleanup.db = true;
  pgAdmin = admin;
  cleanup.nc = await connect({ servers: natsUrl, name: 'bench-scale' });

  const svc = (name, app, port, extra = {}) => procs.start(name, app, { ...commonEnv, PORT: String(port), ...extra });
  const cpu = svc('cpu-compat', 'cpu-compat', ports.cpu);
  const invP = svc('inventory', 'inventory', ports.inventory);
  await Promise.all([procs.waitReady(cpu, 60_000), procs.waitReady(invP, 60_000)]);
  const s = svc('scheduler', 'scheduler', ports.scheduler, { MAX_OUTBOUND_PER_HOST: String(limits.outPerHost), MAX_PER_CLUSTER: String(limits.perCluster), SCHEDULER_ID: tag });
  await procs.waitReady(s, 60_000);
  const results = { loadStart: loadavg() };

  // ---- 1. the small fleet: VM creation at 20 hosts, the reference for CPU per VM ----
  say(`  small fleet: ${cfg.smallHosts} hosts …`);
  startFleet('fleet-small', cfg.smallHosts, `s${process.pid}`, 'scale-small', 'IvyBridge,Haswell,Skylake-Server');
  const small = await waitHostsUp(`s${process.pid}`, cfg.smallHosts, 60_000);
  results.small = await createVms('small', small.ids, cfg.smallVms);
  say(`    ${cfg.smallVms} VMs at ${f1(results.small.perSecond)}/s; CPU per VM ${JSON.stringify(results.small.cpuPerVm)} ms`);

  // ---- 2. the big fleet: registration, then VM creation at N hosts ----
  say(`  big fleet: ${cfg.hosts} hosts …`);
  startFleet('fleet', cfg.hosts, `b${process.pid}`, 'scale-big', 'IvyBridge,Haswell,Skylake-Server');
  const big = await waitHostsUp(`b${process.pid}`, cfg.hosts, 1_200_000);
  results.registerMs = big.ms;
  say(`    ${cfg.hosts} hosts up in ${f1(big.ms / 1000)} s; creating ${cfg.vms} VMs …`);
  results.big = await createVms('big', big.ids, cfg.vms);
  say(`    ${cfg.vms} VMs at ${f1(results.big.perSecond)}/s; CPU per VM ${JSON.stringify(results.big.cpuPerVm)} ms`);

  // ---- 3. idle: what the heartbeats (and the services' loops) cost ----
  say(`  idle for ${cfg.idleS} s …`);
  await sleep(2_000);
  const t0 = await hostsTable();
  const i0 = await cpuSnapshot();
  await sleep(cfg.idleS * 1000);
  const idle = cpuDelta(i0, await cpuSnapshot());
  const t1 = await hostsTable();
  // PostgreSQL's statistics lag by up to a second: the share is of the updates counted between the two reads
  results.hostsTable = { mib: t1.bytes / 2 ** 20, grewMiB: (t1.bytes - t0.bytes) / 2 ** 20, updates: t1.updates - t0.updates, hotPct: t1.updates > t0.updates ? ((t1.hot - t0.hot) / (t1.updates - t0.updates)) * 100 : null };
  results.idle = Object.fromEntries(Object.entries(idle.ms).map(([k, ms]) => [k, (ms / idle.wallMs) * 100]));
  results.idlePgInventory = (idle.pgInventory / idle.wallMs) * 100;
  results.beatsPerSecond = (cfg.hosts + cfg.smallHosts) / 2; // HEARTBEAT_INTERVAL_MS 2 s
  say(`    idle, % of a core: ${JSON.stringify(results.idle)}; inventory's PostgreSQL backends ${f1(results.idlePgInventory)}`);
  say(`    hosts table: ${f1(results.hostsTable.mib)} MiB (${f1(results.hostsTable.grewMiB)} MiB more while idle); ${results.hostsTable.updates} row updates, ${results.hostsTable.hotPct === null ? '—' : `${f1(results.hostsTable.hotPct)} %`} heap-only`);

  // ---- 4. list pages at N VMs ----
  say('  list pages …');
  const pagesT0 = Date.now();
  const someHost = big.ids[0];
  results.pages = [];
  for (const [base, route, limit] of [
    [inv, '/api/v1/vms', 100],
    [inv, '/api/v1/vms', 1000],
    [inv, `/api/v1/vms?clusterId=${big.clusterId}`, 100],
    [inv, `/api/v1/vms?hostId=${someHost}`, 100],
    [inv, '/api/v1/hosts', 100],
    [inv, `/api/v1/hosts?clusterId=${big.clusterId}`, 1000],
    [inv, '/api/v1/clusters', 100],
  ]) {
    check();
    results.pages.push(await timePages(base, route, limit));
  }
  if (cfg.pauses) results.pauses = await pausesBeside(slowPages, pagesT0);

  // ---- 4b. a cluster's CPU views at N hosts: the console's clusters page reads the first two at every visit ----
  say("  the cluster's CPU views …");
  results.clusterViews = [];
  const clusterRoute = `/api/v1/clusters/${big.clusterId}/imc`;
  for (const [label, method, route, body] of [
    ['GET …/imc (the mode, each host\'s highest)', 'GET', clusterRoute],
    ['GET …/imc/plan', 'GET', `${clusterRoute}/plan`],
    ['POST …/imc/verify (a mode every host passes)', 'POST', `${clusterRoute}/verify`, { mode: 'IvyBridge' }],
  ]) {
    check();
    results.clusterViews.push(await timeView(label, method, route, body));
  }

  // ---- 5. evacuations against their lower bound ----
  say('  one migration alone, then evacuations …');
  const vmsOn = async (hostId) => (await allPages(inv, `/api/v1/vms?hostId=${hostId}`)).filter((v) => v.state === 'running');
  const alone = [];
  const aloneViews = [];
  const target = big.ids.at(-1);
  for (const v of (await vmsOn(big.ids.at(-2))).slice(0, 5)) {
    const m = await must(sched, 'POST', '/api/v1/migrations', { vmId: v.id, targetHostId: target });
    const done = await migrationDone(m.id);
    if (done.state !== 'completed') throw new Error(`migration ${m.id} ended ${done.state}`);
    alone.push(spanMs(done));
    aloneViews.push(done);
  }
  const single = quantile(alone, 0.5);
  results.single = single;
  results.evac = [];
  const timeline = [{ alone: true, migrations: aloneViews }];
  for (const hosts of [big.ids.slice(0, 1), big.ids.slice(1, 1 + cfg.evacHosts)]) {
    const total = (await Promise.all(hosts.map(vmsOn))).reduce((a, vs) => a + vs.length, 0);
    const concurrency = Math.min(hosts.length * limits.outPerHost, limits.perCluster);
    const bound = Math.ceil(total / concurrency) * single;
    // from just before the requests to the end of the last migration, both on this machine's wall clock (the
    // scheduler's timestamps): the bench's polling only tells it when to read them
    const wallT0 = Date.now();
    const evs = await Promise.all(hosts.map((h) => must(sched, 'POST', '/api/v1/evacuations', { hostId: h })));
    const ends = await Promise.all(evs.map((e) => evacuationDone(e.id)));
    const failed = ends.reduce((a, e) => a + e.counts.failed + e.counts.notMoved, 0);
    // VMs whose first target step 1 refused (another evacuation put it into maintenance), placed again
    const placedAgain = ends.reduce((a, e) => a + e.vms.filter((v) => v.earlierMigrationIds.length > 0).length, 0);
    const { lastEnd, text: where } = await whereTheTimeWent(wallT0, ends);
    const makespan = lastEnd - wallT0;
    results.evac.push({ hosts: hosts.length, vms: total, makespan, bound, failed, placedAgain, where });
    if (cfg.evacTimeline) {
      const ids = ends.flatMap((e) => e.vms.flatMap((v) => [...v.earlierMigrationIds, ...(v.migrationId ? [v.migrationId] : [])]));
      timeline.push({ hosts: hosts.length, startedAt: new Date(wallT0).toISOString(), makespanMs: makespan, boundMs: bound, migrations: await Promise.all(ids.map((id) => must(sched, 'GET', `/api/v1/migrations/${id}`))) });
    }
    say(`    ${hosts.length} host(s), ${total} VMs: ${f1(makespan)} ms (bound ${f1(bound)} ms); ${placedAgain} placed again; ${where}`);
  }
  if (cfg.evacTimeline) writeFileSync(cfg.evacTimeline, JSON.stringify(timeline, null, 1));
  results.loadEnd = loadavg();
  report(results);
}

function report(r) {
  const ratio = r.big.cpuPerVm.inventory / r.small.cpuPerVm.inventory;
  const ratioCpu = r.big.cpuPerVm['cpu-compat'] / r.small.cpuPerVm['cpu-compat'];
  const worstPage = Math.max(...r.pages.map((p) => p.max));
  const slowestList = r.pages.reduce((a, p) => (p.p50 > a.p50 ? p : a));
  // inventory and the PostgreSQL backends serving it: the scheduler's and cpu-compat's loops use the same database
  const beatCost = r.idle.inventory + r.idlePgInventory;
  const yes = (b) => (b ? 'met' : 'NOT met');
  say();
  say(`## bench/scale — ${cfg.hosts} hosts, ${cfg.vms} VMs; load average ${r.loadStart} at start, ${r.loadEnd} at the end (${os.cpus().length} CPUs)`);
  say();
  say('| measure | figure | goal | |');
  say('|---|---|---|---|');
  say(`| hosts registered | ${cfg.hosts} in ${f1(r.registerMs / 1000)} s | — | |`);
  say(`| VM creation, ${cfg.smallHosts} hosts | ${f1(r.small.perSecond)}/s (p50 ${f1(r.small.p50)} ms, p99 ${f1(r.small.p99)} ms) | — | |`);
  say(`| VM creation, ${cfg.hosts} hosts | ${f1(r.big.perSecond)}/s (p50 ${f1(r.big.p50)} ms, p99 ${f1(r.big.p99)} ms) | ≥ 500/s | ${yes(r.big.perSecond >= 500)} |`);
  say(`| inventory CPU per VM, ${cfg.smallHosts} → ${cfg.hosts} hosts | ${f2(r.small.cpuPerVm.inventory)} → ${f2(r.big.cpuPerVm.inventory)} ms (${f2(ratio)}×) | ≤ 1.5× | ${yes(ratio <= 1.5)} |`);
  say(`| cpu-compat CPU per VM, ${cfg.smallHosts} → ${cfg.hosts} hosts | ${f2(r.small.cpuPerVm['cpu-compat'])} → ${f2(r.big.cpuPerVm['cpu-compat'])} ms (${f2(ratioCpu)}×) | ≤ 1.5× | ${yes(!(ratioCpu > 1.5))} |`);
  say(`| PostgreSQL CPU per VM (this db), ${cfg.smallHosts} → ${cfg.hosts} hosts | ${f2(r.small.cpuPerVm.postgres)} → ${f2(r.big.cpuPerVm.postgres)} ms | — | |`);
  say(`| slowest page of any list, ${cfg.vms + cfg.smallVms} VMs | ${f1(worstPage)} ms | < 20 ms | ${yes(worstPage < 20)} |`);
  say(`| p50 page of the slowest list, ${slowestList.route} | ${f1(slowestList.p50)} ms | < 20 ms | ${yes(slowestList.p50 < 20)} |`);
  say(`| heartbeats while idle (${r.beatsPerSecond}/s): inventory + its PostgreSQL backends | ${f1(r.idle.inventory)} % + ${f1(r.idlePgInventory)} % = ${f1(beatCost)} % of a core (every backend of the database: ${f1(r.idle['postgres (this db)'])} %) | ≤ 5 % | ${yes(beatCost <= 5)} |`);
  const ht = r.hostsTable;
  say(`| inventory's hosts table while idle: size, row updates heap-only | ${f1(ht.mib)} MiB (${f1(ht.grewMiB)} MiB more), ${ht.hotPct === null ? '—' : `${f1(ht.hotPct)} %`} of ${ht.updates} | — | |`);
  for (const e of r.evac) {
    const notes = [e.failed ? `${e.failed} not moved` : '', e.placedAgain ? `${e.placedAgain} placed again` : ''].filter(Boolean).join(', ');
    say(`| evacuate ${e.hosts} host(s), ${e.vms} VMs${notes ? ` (${notes})` : ''} | ${f1(e.makespan)} ms = ${f2(e.makespan / e.bound)}× the bound ${f1(e.bound)} ms | ≤ 1.15× | ${yes(e.makespan / e.bound <= 1.15)} |`);
  }
  say();
  say(`Requests answered 503 (retryable) and asked again: ${retried}.`);
  say(`One migration alone: ${f1(r.single)} ms (median of 5). Lower bound of an evacuation: ceil(VMs / min(hosts × ${limits.outPerHost} outbound, ${limits.perCluster} per cluster)) × that.`);
  for (const e of r.evac) say(`Evacuating ${e.hosts} host(s): ${e.where}.`);
  say();
  say('| list (every page, in order; request to last byte) | pages | items | p50 ms | p99 ms | max ms | the slowest | max ms with the bench\'s JSON.parse |');
  say('|---|---|---|---|---|---|---|---|');
  for (const p of r.pages) say(`| ${p.route} | ${p.pages} | ${p.items} | ${f1(p.p50)} | ${f1(p.p99)} | ${f1(p.max)} | ${p.maxAt} | ${f1(p.maxParsed)} |`);
  say();
  say(`| a cluster of ${cfg.hosts} hosts, its CPU view | hosts named | KiB | p50 ms | max ms |`);
  say('|---|---|---|---|---|');
  for (const v of r.clusterViews) say(`| ${v.label} | ${v.hosts} | ${f1(v.kib)} | ${f1(v.p50)} | ${f1(v.max)} |`);
  if (r.pauses) {
    say();
    say('| the slowest pages | where | ms | pauses they overlapped (4 ms or more; a stall is the event loop late by that much) |');
    say('|---|---|---|---|');
    for (const p of r.pauses.beside) say(`| ${p.route} | ${p.where} | ${f1(p.ms)} | ${p.pauses.join('; ') || 'none'} |`);
    say();
    say('| pauses while the lists were walked | count | max ms | total ms |');
    say('|---|---|---|---|');
    for (const [k, v] of Object.entries(r.pauses.summary).sort()) say(`| ${k} | ${v.n} | ${f1(v.maxMs)} | ${f1(v.totalMs)} |`);
  }
  say();
  say(`| process | CPU per VM created, ${cfg.hosts} hosts (ms) | idle (% of a core) |`);
  say('|---|---|---|');
  const processes = [...new Set([...Object.keys(r.big.cpuPerVmByProcess), ...Object.keys(r.idle)])];
  for (const k of processes) say(`| ${k} | ${r.big.cpuPerVmByProcess[k] === undefined ? '—' : f2(r.big.cpuPerVmByProcess[k])} | ${r.idle[k] === undefined ? '—' : f1(r.idle[k])} |`);
  const total = Object.values(r.big.cpuPerVmByProcess).reduce((a, b) => a + b, 0);
  say(`| all of them | ${f2(total)} (two cores allow ${f1(2000 / total)} VMs/s at that cost) | |`);
}

// ---- cleanup, always ----
const cleanup = { db: false, nc: undefined };
let cleaning;
async function doCleanup() {
  cleaning ??= (async () => {
    await procs.stopAll();
    if (cleanup.nc) {
      await (await jetstreamManager(cleanup.nc)).streams.delete(streamName).catch(() => undefined);
      await cleanup.nc.close().catch(() => undefined);
    }
    if (cleanup.db) await pgAdmin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch((e) => console.error(`could not drop ${dbName}: ${e.message}`));
    await pgAdmin?.end().catch(() => undefined);
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
