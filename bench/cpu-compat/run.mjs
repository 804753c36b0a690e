// Benchmark of CPU compatibility (issue 3, item 9). Run from the repository root after `npm run build`:
//
//   node bench/cpu-compat/run.mjs                 # both parts; starts its own cpu-compat on a fresh prefix
//   node bench/cpu-compat/run.mjs --only=evaluate # part 1 only (no NATS needed)
//   CPU_COMPAT_PREFIX=flexmig node bench/cpu-compat/run.mjs --only=verdict  # against a cpu-compat already running
//
// Part 1: evaluates 10,000 hosts in-process with @flexmig/cpu-models (feature lists and /proc/cpuinfo texts of
//   every generation, some with features removed). Goal: < 100 ms.
// Part 2: verdict requests over NATS (`<prefix>.cpu.verdict`) at a fixed rate (open loop: each request has a
//   scheduled time, and its latency counts from that time, so a stalled client does not hide queueing), for a
//   fixed duration. Goal: p99 < 5 ms at 1,000 requests/s.
// Options: --hosts=10000 --rate=1000 --seconds=10 --only=evaluate|verdict; env NATS_URL (nats://127.0.0.1:4222).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import launcher from '../../libs/testing/src/launcher.cjs';
import { ensureAuthFiles } from '../../scripts/lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const HOSTS = Number(args.hosts ?? 10_000);
const RATE = Number(args.rate ?? 1_000);
const SECONDS = Number(args.seconds ?? 10);
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

// The compiled workspace (dist/out-tsc) imports its libraries as @flexmig/*: map them the way the bundler does.
const outTsc = path.join(root, 'dist/out-tsc');
if (!existsSync(path.join(outTsc, 'libs/cpu-models/index.js'))) {
  console.error('dist/out-tsc is missing: run `npm run build` first');
  process.exit(2);
}
const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request.startsWith('@flexmig/')) return path.join(outTsc, 'libs', request.slice('@flexmig/'.length), 'index.js');
  return resolve.call(this, request, ...rest);
};
const cpuModels = require(path.join(outTsc, 'libs/cpu-models/index.js'));

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const ms = (n) => `${n.toFixed(2)} ms`;

/** A deterministic pseudo-random generator, so two runs evaluate the same hosts. */
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function hostInputs(n) {
  const modes = cpuModels.listBaselines().filter((b) => b.ladder !== 'psabi').map((b) => b.name);
  const fixtures = JSON.parse(readFileSync(path.join(root, 'libs/cpu-models/fixtures/expected.json'), 'utf8'))
    .filter((f) => f.format === 'cpuinfo')
    .map((f) => readFileSync(path.join(root, 'libs/cpu-models/fixtures', f.file), 'utf8'));
  const random = rng(42);
  const inputs = [];
  for (let i = 0; i < n; i++) {
    const mode = modes[Math.floor(random() * modes.length)];
    const kind = i % 4;
    if (kind === 0 || kind === 1) {
      // a feature list, half of them with a few features missing (older microcode, BIOS switches)
      const cpu = cpuModels.simulatedHostCpu(mode);
      let features = cpu.features;
      if (kind === 1) features = features.filter(() => random() > 0.03);
      inputs.push({ features, vendor: cpu.vendor });
    } else if (kind === 2) {
      inputs.push({ cpuinfo: cpuModels.simulatedCpuinfo(mode) });
    } else {
      inputs.push({ cpuinfo: fixtures[i % fixtures.length] }); // real processors' /proc/cpuinfo
    }
  }
  return inputs;
}

function benchEvaluate() {
  const inputs = hostInputs(HOSTS);
  const runs = [];
  let counts;
  for (let r = 0; r < 6; r++) {
    counts = new Map();
    const t = process.hrtime.bigint();
    for (const input of inputs) {
      const e = cpuModels.evaluateHost(input);
      counts.set(e.maxImcMode, (counts.get(e.maxImcMode) ?? 0) + 1);
    }
    runs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const warm = runs.slice(1).sort((a, b) => a - b);
  const kinds = `${inputs.filter((i) => i.features).length} feature lists, ${inputs.filter((i) => i.cpuinfo).length} cpuinfo texts`;
  console.log(`evaluate: ${HOSTS} hosts (${kinds}) in-process`);
  console.log(`  first run ${ms(runs[0])}; next 5 runs median ${ms(warm[2])}, best ${ms(warm[0])}, worst ${ms(warm.at(-1))}  (goal < 100 ms)`);
  console.log(`  ${counts.size} distinct highest modes, e.g. ${[...counts].slice(0, 4).map(([m, c]) => `${m}:${c}`).join(' ')}`);
  return { first: runs[0], median: warm[2] };
}

async function startCpuCompat(prefix) {
  const port = await launcher.freePort();
  // the service checks bearer tokens (the local secret of .flexmig/auth); the benchmark itself speaks NATS only
  const env = { NATS_URL, SUBJECT_PREFIX: prefix, PORT: String(port), LOG_LEVEL: 'warn', AUTH_JWT_SECRET_FILE: (await ensureAuthFiles()).secretFile };
  return launcher.launchService('cpu-compat', { env, echo: (line) => process.stderr.write(`${line}\n`) }).waitReady(port);
}

async function benchVerdicts() {
  const { connect } = require('@nats-io/transport-node');
  const { jetstreamManager } = require('@nats-io/jetstream');
  const own = !process.env.CPU_COMPAT_PREFIX;
  const prefix = process.env.CPU_COMPAT_PREFIX ?? `bench_cpu_${Date.now().toString(36)}`;
  const child = own ? await startCpuCompat(prefix) : undefined;
  const nc = await connect({ servers: NATS_URL, name: 'bench-cpu-compat' });
  try {
    // varied requests: baselines of both ladders against simulated hosts of other generations
    const modes = ['Penryn', 'Westmere', 'SandyBridge', 'IvyBridge', 'Haswell-noTSX', 'Skylake-Server', 'Icelake', 'Opteron_G3', 'EPYC', 'EPYC-Milan'];
    const hosts = modes.map((m) => cpuModels.simulatedHostCpu(m));
    const enc = new TextEncoder();
    const payloads = [];
    for (const b of modes) for (const h of hosts) payloads.push(enc.encode(JSON.stringify({ baseline: b, target: { vendor: h.vendor, features: h.features } })));
    const subject = `${prefix}.cpu.verdict`;
    const dec = new TextDecoder();
    let errors = 0;
    const send = async (i) => {
      const msg = await nc.request(subject, payloads[i % payloads.length], { timeout: 5_000 });
      if (!JSON.parse(dec.decode(msg.data)).ok) errors++;
    };
    for (let i = 0; i < 300; i++) await send(i); // warm-up (JIT, connections)

    const total = RATE * SECONDS;
    const fromSchedule = [];
    const fromSend = [];
    const pending = [];
    const start = performance.now();
    let sent = 0;
    await new Promise((done) => {
      const tick = () => {
        const now = performance.now();
        const due = Math.min(total, Math.floor(((now - start) * RATE) / 1000) + 1);
        for (; sent < due; sent++) {
          const scheduled = start + (sent * 1000) / RATE;
          const t0 = performance.now();
          const i = sent;
          pending.push(
            send(i).then(
              () => {
                const t1 = performance.now();
                fromSchedule.push(t1 - scheduled);
                fromSend.push(t1 - t0);
              },
              () => errors++,
            ),
          );
        }
        if (sent < total) setTimeout(tick, 1);
        else done();
      };
      tick();
    });
    await Promise.all(pending);
    const elapsed = (performance.now() - start) / 1000;
    fromSchedule.sort((a, b) => a - b);
    fromSend.sort((a, b) => a - b);
    console.log(`verdict over NATS: ${total} requests at a target ${RATE}/s for ${SECONDS} s (${own ? 'own cpu-compat process' : `running cpu-compat, prefix ${prefix}`})`);
    console.log(`  achieved ${(fromSchedule.length / elapsed).toFixed(0)} replies/s over ${elapsed.toFixed(2)} s; errors ${errors}`);
    console.log(`  latency from scheduled time: p50 ${ms(percentile(fromSchedule, 50))}  p99 ${ms(percentile(fromSchedule, 99))}  max ${ms(fromSchedule.at(-1))}  (goal p99 < 5 ms)`);
    console.log(`  latency from actual send:    p50 ${ms(percentile(fromSend, 50))}  p99 ${ms(percentile(fromSend, 99))}  max ${ms(fromSend.at(-1))}`);
    return { p50: percentile(fromSchedule, 50), p99: percentile(fromSchedule, 99), max: fromSchedule.at(-1), errors };
  } finally {
    if (own) {
      // the service created its events stream on our prefix: remove it
      const jsm = await jetstreamManager(nc).catch(() => undefined);
      await jsm?.streams.delete(`${prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_EVENTS`).catch(() => undefined);
    }
    await nc.close();
    if (child) {
      await child.stop();
    }
  }
}

const evaluate = args.only === 'verdict' ? undefined : benchEvaluate();
const verdicts = args.only === 'evaluate' ? undefined : await benchVerdicts();
const failed = (evaluate && evaluate.median >= 100) || (verdicts && (verdicts.p99 >= 5 || verdicts.errors > 0));
console.log(failed ? 'RESULT: a goal was missed' : 'RESULT: goals met');
process.exitCode = failed ? 1 : 0;
