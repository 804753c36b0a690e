import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { freePort, NatsServerProcess, ServiceProcess, startTestDatabase, TestDatabase, waitFor, httpJson } from '@flexmig/testing';

/**
 * Two real QEMU agents, each on a host of its own: a network namespace with its own address on a bridge
 * (10.231.0.0/24, nothing else). The services run in the root namespace; NATS listens on the bridge only.
 * A VM migrates from one namespace to the other through the whole system, QEMU to QEMU across the
 * bridge, and its memory is verified on the target.
 */
const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();
const suffix = String(process.pid % 10_000);
const bridge = `fmbr${suffix}`;
const hosts = [
  { id: 'ns-a', ns: `fma${suffix}`, ip: '10.231.0.2' },
  { id: 'ns-b', ns: `fmb${suffix}`, ip: '10.231.0.3' },
];

function unavailable(): string | undefined {
  if (userInfo().uid !== 0) return 'network namespaces need root';
  for (const bin of ['ip', 'qemu-system-x86_64', 'as', 'nats-server']) {
    try {
      execFileSync('which', [bin], { stdio: 'ignore' });
    } catch {
      return `${bin} is not installed`;
    }
  }
  try {
    sh('ip', 'netns', 'add', `fmprobe${suffix}`);
    sh('ip', 'netns', 'del', `fmprobe${suffix}`);
  } catch (e) {
    return `this machine does not allow network namespaces (${(e as Error).message.split('\n')[0]})`;
  }
  return undefined;
}

const why = unavailable();
const describeIf = why ? describe.skip : describe;
if (why) console.warn(`qemu agents in network namespaces: skipped (${why}); the loopback tests in drivers/qemu cover the driver`);

function createNetwork(): void {
  sh('ip', 'link', 'add', bridge, 'type', 'bridge');
  sh('ip', 'addr', 'add', '10.231.0.1/24', 'dev', bridge);
  sh('ip', 'link', 'set', bridge, 'up');
  for (const h of hosts) {
    sh('ip', 'netns', 'add', h.ns);
    sh('ip', 'link', 'add', `${h.ns}r`, 'type', 'veth', 'peer', 'name', `${h.ns}n`);
    sh('ip', 'link', 'set', `${h.ns}n`, 'netns', h.ns);
    sh('ip', 'link', 'set', `${h.ns}r`, 'master', bridge);
    sh('ip', 'link', 'set', `${h.ns}r`, 'up');
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'addr', 'add', `${h.ip}/24`, 'dev', `${h.ns}n`);
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', `${h.ns}n`, 'up');
    sh('ip', 'netns', 'exec', h.ns, 'ip', 'link', 'set', 'lo', 'up');
  }
}

function destroyNetwork(): void {
  for (const h of hosts) {
    // whatever still runs in the namespace (a QEMU the agent left running, by design) ends with the test
    try {
      for (const pid of sh('ip', 'netns', 'pids', h.ns).split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // no such namespace
    }
    try {
      sh('ip', 'netns', 'del', h.ns);
    } catch {
      // already gone
    }
  }
  try {
    sh('ip', 'link', 'del', bridge);
  } catch {
    // already gone
  }
}

describeIf('two QEMU agents on hosts of their own (network namespaces)', () => {
  const nats = new NatsServerProcess('10.231.0.1');
  let db: TestDatabase;
  let nc: NatsConnection;
  const procs: ServiceProcess[] = [];
  const url: Record<string, string> = {};
  const runDir = mkdtempSync(path.join(tmpdir(), 'flexmig-netns-'));
  const prefix = `netns_${suffix}`;

  const http = (service: string, method: string, route: string, body?: unknown) => httpJson(url[service], method, route, body);

  beforeAll(async () => {
    destroyNetwork(); // leftovers of an interrupted run
    createNetwork();
    await nats.start();
    db = await startTestDatabase('netns');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    for (const app of ['cpu-compat', 'inventory', 'scheduler']) {
      const port = await freePort();
      url[app] = `http://127.0.0.1:${port}`;
      procs.push(await new ServiceProcess(app, { ...common, PORT: String(port) }, port).start());
    }
    for (const h of hosts) {
      // no readiness probe from here: the agent's /health is inside its namespace; inventory tells instead
      procs.push(
        await new ServiceProcess(
          'agent',
          {
            ...common,
            HOST_ID: h.id,
            CLUSTER_NAME: 'netns',
            DRIVER: 'qemu',
            QEMU_ACCEL: 'tcg',
            QEMU_RUN_DIR: path.join(runDir, h.id),
            AGENT_STATE_DIR: path.join(runDir, h.id),
            MIGRATION_ADDRESS: `${h.ip}:49152`,
            QEMU_GUEST_DIRTY_RATE_MIBPS: '32',
            QEMU_GUEST_WORKING_SET_MIB: '32',
            PORT: '3010',
          },
          undefined,
          h.id,
          ['ip', 'netns', 'exec', h.ns],
        ).start(),
      );
    }
    await waitFor('both agents registered', async () => (await http('inventory', 'GET', '/api/v1/hosts')).body.items?.filter((x: any) => x.state === 'up').length === 2, {
      timeoutMs: 60_000,
    }).catch((e) => {
      throw new Error(`${(e as Error).message}\n${procs.filter((p) => p.app === 'agent').map((p) => `${p.label}:\n${p.tail(15)}`).join('\n')}`);
    });
    nc = await connect({ servers: nats.url });
  }, 180_000);

  afterAll(async () => {
    await nc?.close();
    for (const p of procs.reverse()) await p.stop();
    destroyNetwork();
    await db?.stop();
    await nats.destroy();
    rmSync(runDir, { recursive: true, force: true });
  });

  it('the hosts have their own addresses and reach NATS across the bridge', async () => {
    const listed = (await http('inventory', 'GET', '/api/v1/hosts')).body.items;
    expect(listed.map((x: any) => [x.id, x.driver, x.migrationAddress]).sort()).toEqual([
      ['ns-a', 'qemu', '10.231.0.2:49152'],
      ['ns-b', 'qemu', '10.231.0.3:49152'],
    ]);
    expect(sh('ip', 'netns', 'exec', hosts[0].ns, 'ip', '-4', 'addr', 'show')).not.toContain('10.231.0.3');
  });

  it('a VM moves from one host to the other, QEMU to QEMU across the bridge, its memory intact and its CPU unchanged', async () => {
    const vm = (await http('inventory', 'POST', '/api/v1/vms', { name: 'netns-vm', hostId: 'ns-a', memoryMiB: 256, vcpus: 1 })).body;
    expect(vm).toMatchObject({ hostId: 'ns-a', state: 'running' });
    // what the guest sees of its CPU (CPUID inside the guest, through inventory and the agent), before the move
    const cpuCheck = async () => (await http('inventory', 'POST', `/api/v1/vms/${vm.id}/cpu-check`)).body;
    const cpuBefore = await cpuCheck();
    expect(cpuBefore).toMatchObject({ ok: true, hostId: 'ns-a', baseline: vm.cpuBaseline, source: 'guest', accel: 'tcg', missing: [], extra: [] });
    const accepted = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'ns-b' });
    expect(accepted.status).toBe(202);
    const m = await waitFor('the migration to end', async () => {
      const { body } = await http('scheduler', 'GET', `/api/v1/migrations/${accepted.body.id}`);
      return ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(body.state) ? body : undefined;
    }, { timeoutMs: 120_000, intervalMs: 200 });
    expect(m.state).toBe('completed');
    expect(m.result.downtimeMs).toBeGreaterThan(0);
    expect((await http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('ns-b');

    // the target listened on its own namespace's address: the stream crossed the bridge
    const ask = async (hostId: string, what: string, body: unknown) =>
      JSON.parse(new TextDecoder().decode((await nc.request(`${prefix}.agent.${hostId}.${what}`, new TextEncoder().encode(JSON.stringify(body)), { timeout: 60_000 })).data));
    const steps = (await ask('ns-b', 'migration.query', { migrationId: m.id })).data.steps;
    expect(steps.find((s: any) => s.step === 2).reply.incomingAddress).toMatch(/^10\.231\.0\.3:\d+$/);
    // the guest stopped inside step 4 (QEMU's pre-switchover): the source agent recorded step 5 done with it,
    // and the scheduler sent no command of step 5 (it completed in step 4's transition, taking no time)
    const atSource = (await ask('ns-a', 'migration.query', { migrationId: m.id })).data.steps;
    const four = atSource.find((s: any) => s.step === 4);
    expect(four.reply.pausedAt).toEqual(expect.any(String));
    expect(atSource.find((s: any) => s.step === 5)).toMatchObject({ status: 'completed', attempt: 1, reply: { pausedAt: four.reply.pausedAt, repeated: false } });
    const viewed = (n: number) => m.steps.find((s: any) => s.number === n);
    expect(viewed(5)).toMatchObject({ status: 'completed', attempt: 1, durationMs: 0, startedAt: viewed(4).endedAt });
    const check = (await ask('ns-b', 'vm.check-memory', { vmId: vm.id })).data;
    expect(check).toMatchObject({ vmId: vm.id, ok: true, badPages: 0, guestAdvancing: true });
    expect(check.pagesChecked).toBeGreaterThan(0);
    expect((await ask('ns-a', 'vm.list', {})).data.vms.filter((v: any) => v.vmId === vm.id)).toEqual([]);
    // after: a sample the guest took on ns-b, the same CPU
    const cpuAfter = await cpuCheck();
    expect(cpuAfter).toMatchObject({ ok: true, hostId: 'ns-b', baseline: vm.cpuBaseline, source: 'guest', missing: [], extra: [] });
    expect(cpuAfter.seen).toEqual(cpuBefore.seen);
    expect(cpuAfter.sample).toBeGreaterThan(cpuBefore.sample);
  });
});
