// `npm run demo -- --driver qemu`: the demo with a REAL VM. Two agents with DRIVER=qemu on this machine
// (hosts qemu-a and qemu-b, loopback migration addresses), a cluster, a VM whose guest keeps writing its
// memory in a known pattern, a live migration followed step by step with progress, the result, and then
// the CPU the guest sees is checked before and after the move (POST /api/v1/vms/:id/cpu-check: CPUID executed
// inside the guest, against its baseline; it must not change), and
// the target agent checks the guest's memory (CheckVmMemory: every page of the written range holds the
// pattern, and the guest still advances). Exits 0 only if all of that held and no QEMU process or file of
// the demo is left behind.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { api, bold, cyan, dim, ensureBuilt, green, preflight, PreflightError, Processes, recreateDatabase, red, root, sleep, yellow } from './lib.mjs';

const require = createRequire(import.meta.url);
const { connect } = require('@nats-io/transport-node');

const demoDir = path.join(root, '.flexmig/demo-qemu');
const hosts = ['qemu-a', 'qemu-b'];
const vmMemoryMiB = Number(process.env.DEMO_VM_MEMORY_MIB ?? 512);
const accel = process.env.DEMO_QEMU_ACCEL ?? 'tcg';
// the guest writes this working set at this rate (both agents must agree: it is the agents' default workload)
const dirtyRateMiBps = Number(process.env.DEMO_GUEST_DIRTY_RATE_MIBPS ?? 64);
const workingSetMiB = Number(process.env.DEMO_GUEST_WORKING_SET_MIB ?? Math.min(256, vmMemoryMiB - 2));
// unset: each target listens on a port the kernel picks and the scheduler hands it to the source
const migrationPortRange = process.env.DEMO_QEMU_PORT_RANGE;

/** The tools the qemu driver needs: QEMU itself and binutils (the guest workload is assembled at VM start). */
function checkTools() {
  const missing = [];
  const qemu = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
  const v = spawnSync(qemu, ['--version'], { encoding: 'utf8' });
  if (v.status !== 0) missing.push(qemu);
  for (const t of ['as', 'ld', 'objcopy']) if (spawnSync(t, ['--version']).status !== 0) missing.push(t);
  if (missing.length) {
    throw new PreflightError(`the qemu demo needs ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed.\n  Debian/Ubuntu:  apt-get install -y qemu-system-x86 binutils`);
  }
  return v.stdout.split('\n')[0].trim();
}

/** QEMU processes started under the demo's directory (their command line names their QMP socket there). */
function demoQemus() {
  const r = spawnSync('pgrep', ['-f', `qemu-system.*${demoDir}`], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmd.includes(demoDir) && /qemu-system/.test(cmd);
      } catch {
        return false;
      }
    });
}

/** Ends every QEMU the demo's agents started (agents leave their VMs running on purpose) and removes the demo's files. */
async function cleanUp() {
  for (const sig of ['SIGTERM', 'SIGKILL']) {
    const pids = demoQemus();
    if (!pids.length) break;
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 50 && demoQemus().length; i++) await sleep(100);
  }
  const left = demoQemus();
  rmSync(demoDir, { recursive: true, force: true });
  return left;
}

/** Prints a cpu-check answer (POST /api/v1/vms/:id/cpu-check) and fails the demo when the guest does not see its baseline. */
function cpuCheck(c, say) {
  const excused = c.exceptions.map((e) => `${e.seen ? '+' : '-'}${e.feature} (${e.reason})`).join(', ');
  say(
    `  CPU check on ${c.hostId} (${c.source}, ${c.accel ?? ''}): the guest sees ${bold(String(c.seen.length))} features, baseline ${cyan(c.baseline)} ` +
      `${c.ok ? green('exactly ✓') : red(`missing [${c.missing.join(', ')}], extra [${c.extra.join(', ')}]`)}`,
  );
  if (excused) say(dim(`    documented exceptions: ${excused}`));
  if (!c.ok) throw new Error(`the guest on ${c.hostId} does not see its baseline ${c.baseline}: missing [${c.missing.join(', ')}], extra [${c.extra.join(', ')}]`);
  return c;
}

function readSerial(file) {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return '';
  }
}

function logTail(file, lines = 15) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function runQemuDemo({ env: baseEnv, urls, natsUrl, demoNats, follow, expect, waitFor, fmtMs, fmtBytes, say }) {
  const t0 = Date.now();
  say(bold('flexmig demo — live migration of a real VM under QEMU'));
  ensureBuilt(['inventory', 'scheduler', 'cpu-compat', 'agent', 'cli']);
  const qemuVersion = checkTools();
  const env = { ...baseEnv, SUBJECT_PREFIX: 'flexmig_demo_qemu', DATABASE_URL: baseEnv.DATABASE_URL.replace(/\/flexmig_demo$/, '/flexmig_demo_qemu') };
  await preflight({ databaseUrl: env.DATABASE_URL });
  await recreateDatabase(env.DATABASE_URL);
  if (demoQemus().length) {
    say(yellow(`  QEMU processes of an earlier demo run are still there: ending them`));
  }
  await cleanUp();
  say(dim(`  ${qemuVersion}; accelerator ${accel}${accel === 'tcg' ? ' (the nested KVM here runs almost no named CPU model: DEMO_QEMU_ACCEL=auto to try it)' : ''}`));

  const logDir = path.join(root, '.flexmig/demo-logs');
  const procs = new Processes({ logDir, echo: false });
  let died;
  procs.onExit = (name, code) => {
    died = `${name} stopped unexpectedly (code ${code}); its log ends:\n${logTail(path.join(logDir, `${name}.log`))}`;
    console.error(red(`\n${died}`));
  };
  let nats;
  try {
    nats = await demoNats(procs, env, natsUrl); // its own nats-server with identities, or NATS_URL with AUTH=off
  } catch (e) {
    await procs.stopAll();
    throw e;
  }
  const nc = await connect({ servers: nats.url, ...nats.clientOptions() });
  const request = async (subject, body, timeoutMs) => {
    const m = await nc.request(`${env.SUBJECT_PREFIX}.${subject}`, new TextEncoder().encode(JSON.stringify(body)), { timeout: timeoutMs });
    const reply = JSON.parse(new TextDecoder().decode(m.data));
    if (!reply.ok) throw Object.assign(new Error(`${reply.error.code}: ${reply.error.message}`), { code: reply.error.code });
    return reply.data;
  };
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    say(yellow('\n  interrupted: stopping the services and ending the demo\'s QEMU processes …'));
    void procs.stopAll().then(cleanUp).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let ok = false;
  try {
    process.stdout.write(`  starting cpu-compat, inventory and scheduler … `);
    const services = [
      procs.start('cpu-compat', 'cpu-compat', { ...env, ...nats.serviceEnv('cpu-compat'), PORT: String(Number(new URL(urls.cpu).port)) }),
      procs.start('inventory', 'inventory', { ...env, ...nats.serviceEnv('inventory'), PORT: String(Number(new URL(urls.inventory).port)) }),
      procs.start('scheduler', 'scheduler', { ...env, ...nats.serviceEnv('scheduler'), PORT: String(Number(new URL(urls.scheduler).port)) }),
    ];
    await Promise.all(services.map((s) => procs.waitReady(s)));
    say(green('ready'));

    const cluster = expect(await api(urls.inventory, 'POST', '/api/v1/clusters', { name: 'demo-qemu' }), 201, 'creating the cluster');
    say(`  cluster ${bold(cluster.name)} created ${dim(cluster.id)}`);
    process.stdout.write(`  starting two qemu agents (each probes what QEMU can run here) … `);
    const agentPortBase = Number(new URL(urls.inventory).port) + 20;
    const agents = hosts.map((h, i) =>
      procs.start(h, 'agent', {
        ...env,
        ...nats.agentEnv(h),
        // the agents' log files keep what each step did (the demo shows the source's 'over TLS' line from it)
        LOG_LEVEL: 'log',
        HOST_ID: h,
        CLUSTER_ID: cluster.id,
        DRIVER: 'qemu',
        PORT: String(agentPortBase + i),
        MIGRATION_ADDRESS: `127.0.0.1:${49500 + i}`,
        AGENT_STATE_DIR: path.join(demoDir, h, 'state'),
        QEMU_RUN_DIR: path.join(demoDir, h, 'run'),
        QEMU_ACCEL: accel,
        ...(migrationPortRange ? { QEMU_MIGRATION_PORT_RANGE: migrationPortRange } : {}),
        QEMU_GUEST_DIRTY_RATE_MIBPS: String(dirtyRateMiBps),
        QEMU_GUEST_WORKING_SET_MIB: String(workingSetMiB),
      }),
    );
    await Promise.all(agents.map((a) => procs.waitReady(a, 60_000)));
    say(green('ready'));
    const registered = await waitFor(
      'the two qemu hosts to register',
      async () => {
        const r = await api(urls.inventory, 'GET', `/api/v1/hosts?clusterId=${cluster.id}`);
        return r.status === 200 && r.body.items.filter((h) => h.state === 'up').length === hosts.length ? r.body.items : undefined;
      },
      60_000,
    ).catch((e) => {
      throw new Error(`${e.message}: the agents' logs say:\n${hosts.map((h) => `${h}:\n${logTail(path.join(logDir, `${h}.log`), 8)}`).join('\n')}`);
    });
    for (const h of registered) say(`    ${h.id}  ${h.cpu.modelName.padEnd(52)} highest CPU mode ${cyan(h.maxImcMode ?? '(none)')}`);

    const [source, target] = hosts;
    const created = await api(urls.inventory, 'POST', '/api/v1/vms', { name: 'demo-qemu-vm', hostId: source, memoryMiB: vmMemoryMiB, vcpus: 1 });
    if (created.status !== 201) {
      throw new Error(
        `starting the VM on ${source} failed: HTTP ${created.status} ${created.body.code ?? ''}: ${created.body.message ?? JSON.stringify(created.body)}\n` +
          `  (the VM's CPU baseline is the cluster's common mode; under ${accel} this machine must run it with enforce)`,
      );
    }
    const vm = created.body;
    const vmInfo = JSON.parse(readFileSync(path.join(demoDir, source, 'run', `${vm.id}.json`), 'utf8'));
    say(
      `  VM ${bold(vm.name)} (${vm.memoryMiB} MiB, ${vm.vcpus} vCPU) runs on ${source}: QEMU pid ${vmInfo.pid}, ${cyan(`-cpu ${vmInfo.cpu}`)} under ${vmInfo.accel}; ` +
        `its guest writes ${workingSetMiB} MiB at ~${dirtyRateMiBps} MiB/s`,
    );

    // let the guest write its whole working set once (it prints 'B' on its serial port after a full pass), so
    // that what is migrated is memory in use, not zero pages
    process.stdout.write(`  waiting for the guest to write its ${workingSetMiB} MiB once … `);
    const warm = Date.now();
    await waitFor(`the guest's first full pass ('B' on its serial port, ${vmInfo.serialFile})`, async () => readSerial(vmInfo.serialFile).includes('B'), 120_000);
    say(`${green('done')} ${dim(`in ${fmtMs(Date.now() - warm)}; serial: ${JSON.stringify(readSerial(vmInfo.serialFile).slice(0, 12))}`)}`);

    const cpuBefore = cpuCheck(expect(await api(urls.inventory, 'POST', `/api/v1/vms/${vm.id}/cpu-check`), 200, 'checking the CPU the guest sees'), say);

    say('');
    const overTls = Boolean(nats.agentEnv(source).QEMU_TLS_DIR);
    say(bold(`live-migrating ${vm.name}: ${source} → ${target} (QEMU to QEMU over loopback ${overTls ? 'TCP with TLS, each end verifying the other' : 'TCP, in cleartext (AUTH=off)'})`));
    const requested = expect(await api(urls.scheduler, 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: target }), 202, 'requesting the migration');
    const m = await follow(requested.id, nc, env.SUBJECT_PREFIX);
    if (m.state !== 'completed') throw new Error(`the migration ended ${m.state} at step ${m.failure?.step} (${m.failure?.stepName}): ${m.failure?.code} ${m.failure?.message ?? ''}`);
    const r = m.result;
    say(
      `  ${green('completed')} in ${bold(fmtMs(r.totalTimeMs))}: downtime ${bold(fmtMs(r.downtimeMs))} as the guest saw it (stopped on ${source} → running on ${target}), ` +
        `${bold(fmtBytes(r.bytesTransferred))} moved in ${r.passes} ${r.passes === 1 ? 'pass' : 'passes'}`,
    );
    const after = expect(await api(urls.inventory, 'GET', `/api/v1/vms/${vm.id}`), 200, 'reading the VM');
    if (after.hostId !== target) throw new Error(`inventory says the VM is on ${after.hostId}, not ${target}`);
    const srcVms = await request(`agent.${source}.vm.list`, {}, 5_000);
    const srcAlive = (() => {
      try {
        process.kill(vmInfo.pid, 0);
        return readFileSync(`/proc/${vmInfo.pid}/cmdline`, 'utf8').includes(demoDir);
      } catch {
        return false;
      }
    })();
    if (srcVms.vms.some((v) => v.vmId === vm.id && v.state !== 'stopped') || srcAlive) throw new Error(`the source QEMU (pid ${vmInfo.pid}) is still there on ${source}`);
    say(`  inventory: ${vm.name} runs on ${bold(after.hostId)} ${green('✓')}   source QEMU pid ${vmInfo.pid} is gone ${green('✓')}`);
    if (overTls) {
      // the source agent logs what QEMU itself reported about the stream's credentials (it refuses cleartext)
      const line = readFileSync(path.join(logDir, `${source}.log`), 'utf8').split('\n').find((l) => l.includes(`migration ${requested.id}`) && l.includes('over TLS'));
      if (!line) throw new Error(`the source agent's log does not say that migration ${requested.id} ran over TLS (see ${path.join(logDir, `${source}.log`)})`);
      say(`  the stream ran over TLS ${green('✓')} ${dim(line.slice(line.indexOf('over TLS')).slice(0, 110))}`);
    }

    say('');
    say(bold(`checking the guest's memory on ${target}`));
    process.stdout.write(`  ${dim(`agent.${target}.vm.check-memory`)}: pausing the guest, reading ${workingSetMiB} MiB, resuming … `);
    const c = await request(`agent.${target}.vm.check-memory`, { vmId: vm.id }, 180_000);
    say(c.ok ? green('intact') : red('NOT intact'));
    say(`  pages checked ${bold(String(c.pagesChecked))}, bad pages ${bold(c.badPages === 0 ? green('0') : red(String(c.badPages)))}, guest still advancing ${c.guestAdvancing ? green('yes') : red('no')}`);
    say(dim(`  ${c.detail}`));
    if (!c.ok) throw new Error(`the guest's memory check on ${target} failed: ${c.detail}`);

    say('');
    say(bold(`the CPU the guest sees, after the move`));
    const cpuAfter = cpuCheck(expect(await api(urls.inventory, 'POST', `/api/v1/vms/${vm.id}/cpu-check`), 200, 'checking the CPU the guest sees'), say);
    if (cpuAfter.hostId !== target) throw new Error(`the CPU check after the move ran on ${cpuAfter.hostId}, not ${target}`);
    if (JSON.stringify(cpuAfter.seen) !== JSON.stringify(cpuBefore.seen)) {
      const gone = cpuBefore.seen.filter((f) => !cpuAfter.seen.includes(f));
      const came = cpuAfter.seen.filter((f) => !cpuBefore.seen.includes(f));
      throw new Error(`the CPU the guest sees changed across the move: gone [${gone.join(', ')}], new [${came.join(', ')}]`);
    }
    say(`  the same ${cpuAfter.seen.length} features on ${target} as on ${source} (guest sample ${cpuBefore.sample} → ${cpuAfter.sample}) ${green('✓')}`);
    ok = true;
  } catch (e) {
    if (!interrupted) console.error(red(`\ndemo failed: ${e instanceof PreflightError ? e.message : e.message}`));
  } finally {
    await nc.close().catch(() => undefined);
    await procs.stopAll();
  }
  if (interrupted) return;
  // the agents leave their VMs running on purpose (a restarted agent finds them): the demo ends its own
  const left = await cleanUp();
  if (left.length) {
    console.error(red(`  QEMU processes still running after clean-up: ${left.join(', ')}`));
    ok = false;
  } else {
    say(dim(`  cleaned up: no QEMU process of the demo left, ${path.relative(root, demoDir)} removed`));
  }
  if (died) ok = false;
  say(dim(`demo ${ok ? 'done' : 'failed'} in ${fmtMs(Date.now() - t0)}; service logs in ${logDir}`));
  process.exit(ok ? 0 : 1);
}
