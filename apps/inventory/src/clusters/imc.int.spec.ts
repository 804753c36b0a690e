import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { type HostListItem, ListHosts, withFeatures } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { freePort, launchService, type Launched, repoRoot, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor, httpJson, readEvents, testToken } from '@flexmig/testing';

// Cluster CPU modes (issue 3, item 4), and what a VM's guest sees of its CPU (issue 12: cpu-check, here from
// the sim driver's model), through inventory's HTTP API, against real PostgreSQL and NATS, with
// cpu-compat, inventory, the scheduler and simulated agents running as real processes (`npm run build` first).

const call = httpJson;

/** Runs an agent that is expected to stop by itself; resolves with its exit code and output. */
function runAgentToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist/apps/agent/main.js')], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`agent ${env.HOST_ID} did not exit within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('cluster CPU mode (IMC) through the HTTP API', () => {
  let nats: TestNats;
  let db: TestDatabase;
  const services: ServiceProcess[] = [];
  let inv: string; // inventory base URL
  let cpu: string; // cpu-compat base URL
  let sched: string; // scheduler base URL
  let common: Record<string, string>;
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-imc-agents-')); // the agents' state, the suite's own

  /** As an admin named `test`, or with the token given. */
  const api = (method: string, route: string, body?: unknown, token?: string) => call(inv, method, route, body, { token });
  /** An admin token for `sub`: who changes a mode is the token's subject, whatever the body claims. */
  const adminNamed = (sub: string) => testToken('admin', sub);

  async function startAgent(hostId: string, simCpu: string, cluster: { CLUSTER_NAME: string } | { CLUSTER_ID: string }): Promise<void> {
    const port = await freePort();
    const agent = new ServiceProcess('agent', { ...common, ...cluster, HOST_ID: hostId, SIM_CPU: simCpu, PORT: String(port), SIM_TIME_SCALE: '0' }, port, `agent ${hostId}`);
    services.push(agent);
    await agent.start();
    await waitFor(`host ${hostId} to register`, async () => (await api('GET', `/api/v1/hosts/${hostId}`)).status === 200);
  }

  async function createVm(name: string, hostId: string): Promise<any> {
    const r = await api('POST', '/api/v1/vms', { name, hostId, memoryMiB: 1024, vcpus: 1 });
    expect(r).toMatchObject({ status: 201 });
    return r.body;
  }

  async function clusterId(name: string): Promise<string> {
    const { body } = await api('GET', '/api/v1/clusters');
    const c = body.items.find((x: { name: string }) => x.name === name);
    if (!c) throw new Error(`no cluster ${name}`);
    return c.id;
  }

  /** The cluster.imc-mode-changed events of a cluster, read from JetStream by a consumer created now. */
  async function imcEvents(id: string): Promise<{ oldMode: string | null; newMode: string | null; by: string }[]> {
    const events = await readEvents<{ clusterId: string; oldMode: string | null; newMode: string | null; by: string }>(nats.url, nats.prefix, 'cluster.imc-mode-changed');
    return events.filter((e) => e.data.clusterId === id).map(({ data }) => ({ oldMode: data.oldMode, newMode: data.newMode, by: data.by }));
  }

  beforeAll(async () => {
    nats = await startTestNats('imc');
    db = await startTestDatabase('imc');
    common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn', AGENT_STATE_DIR: stateDir };
    const [cpuPort, invPort, schedPort] = [await freePort(), await freePort(), await freePort()];
    cpu = `http://127.0.0.1:${cpuPort}`;
    inv = `http://127.0.0.1:${invPort}`;
    sched = `http://127.0.0.1:${schedPort}`;
    const cpuCompat = new ServiceProcess('cpu-compat', { ...common, PORT: String(cpuPort) }, cpuPort);
    const inventory = new ServiceProcess('inventory', { ...common, DATABASE_URL: db.url, PORT: String(invPort) }, invPort);
    const scheduler = new ServiceProcess('scheduler', { ...common, DATABASE_URL: db.url, PORT: String(schedPort) }, schedPort);
    services.push(cpuCompat, inventory, scheduler);
    await Promise.all([cpuCompat.start(), inventory.start(), scheduler.start()]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }, 60_000);

  describe('a SandyBridge and an IvyBridge host', () => {
    let id: string;

    beforeAll(async () => {
      await Promise.all([startAgent('mx-snb', 'SandyBridge', { CLUSTER_NAME: 'mixed' }), startAgent('mx-ivb', 'IvyBridge', { CLUSTER_NAME: 'mixed' })]);
      id = await clusterId('mixed');
    }, 60_000);

    it('shows no mode set, the common mode, the host holding it down and each host highest mode', async () => {
      const r = await api('GET', `/api/v1/clusters/${id}/imc`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ clusterId: id, mode: null, passthrough: false, effectiveMode: 'SandyBridge', commonMode: 'SandyBridge', holdingDown: ['mx-snb'] });
      expect(r.body.hosts.map((h: { hostId: string; maxImcMode: string }) => [h.hostId, h.maxImcMode])).toEqual([
        ['mx-ivb', 'IvyBridge'],
        ['mx-snb', 'SandyBridge'],
      ]);
    });

    it('verify reports per host pass/fail with the missing features', async () => {
      const ivb = await api('POST', `/api/v1/clusters/${id}/imc/verify`, { mode: 'ivybridge' });
      expect(ivb.status).toBe(200);
      expect(ivb.body.mode).toBe('IvyBridge');
      expect(ivb.body.pass).toBe(false);
      const byHost = Object.fromEntries(ivb.body.hosts.map((h: { hostId: string }) => [h.hostId, h]));
      expect(byHost['mx-ivb']).toMatchObject({ pass: true, missing: [] });
      expect(byHost['mx-snb'].pass).toBe(false);
      expect(byHost['mx-snb'].missing).toEqual(expect.arrayContaining(['f16c', 'rdrand', 'fsgsbase', 'erms', 'smep']));

      const snb = await api('POST', `/api/v1/clusters/${id}/imc/verify`, { mode: 'SandyBridge' });
      expect(snb.body).toMatchObject({ mode: 'SandyBridge', pass: true });
      expect(snb.body.hosts.every((h: { pass: boolean }) => h.pass)).toBe(true);
    });

    it('refuses a mode above a host highest mode, naming the host and features, and changes nothing', async () => {
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'IvyBridge' });
      expect(r.status).toBe(422);
      expect(r.body.code).toBe('CPU_INCOMPATIBLE');
      expect(r.body.message).toMatch(/mx-snb lacks .*f16c/);
      expect(r.body.details.hosts).toEqual([expect.objectContaining({ hostId: 'mx-snb', missing: expect.arrayContaining(['f16c', 'rdrand']) })]);
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body.mode).toBeNull();
    });

    it('rejects bad bodies (400), unknown modes (404 UNKNOWN_CPU_MODEL) and unknown clusters (404)', async () => {
      for (const body of [{}, { mode: 42 }, { mode: '' }, { mode: 'SandyBridge', extra: 1 }, { by: 'x' }]) {
        const r = await api('PUT', `/api/v1/clusters/${id}/imc`, body);
        expect({ body, status: r.status, code: r.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
      }
      expect((await api('POST', `/api/v1/clusters/${id}/imc/verify`, {})).status).toBe(400);
      expect((await api('POST', `/api/v1/clusters/${id}/imc/auto`, { mode: 'x' })).status).toBe(400);
      expect((await api('GET', '/api/v1/clusters/not-a-uuid/imc')).status).toBe(400);

      const unknown = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'Pentium4' });
      expect(unknown.status).toBe(404);
      expect(unknown.body.code).toBe('UNKNOWN_CPU_MODEL');
      expect(unknown.body.message).toMatch(/Pentium4/);
      expect((await api('POST', `/api/v1/clusters/${id}/imc/verify`, { mode: 'Pentium4' })).body.code).toBe('UNKNOWN_CPU_MODEL');

      const missing = await api('GET', '/api/v1/clusters/00000000-0000-4000-8000-000000000000/imc');
      expect(missing).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
      expect((await api('PUT', '/api/v1/clusters/00000000-0000-4000-8000-000000000000/imc', { mode: 'SandyBridge' })).status).toBe(404);
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body.mode).toBeNull();
    });

    it('auto tries the Intel ladder from the top down and sets SandyBridge, publishing the change', async () => {
      // the body claims someone else: the token's subject is what is recorded
      const r = await api('POST', `/api/v1/clusters/${id}/imc/auto`, { by: 'mallory' }, await adminNamed('alice'));
      expect(r.status).toBe(200);
      expect(r.body.mode).toBe('SandyBridge');
      const tried = r.body.tries.map((t: { mode: string }) => t.mode);
      expect(tried[0]).toBe('DiamondRapids'); // the newest Intel mode (libvirt 12.8.0)
      expect(tried.at(-1)).toBe('SandyBridge');
      expect(tried).toContain('IvyBridge');
      expect(r.body.tries.slice(0, -1).every((t: { pass: boolean }) => !t.pass)).toBe(true);
      expect(r.body.tries.at(-1).pass).toBe(true);
      const ivbTry = r.body.tries.find((t: { mode: string }) => t.mode === 'IvyBridge');
      expect(ivbTry.failing).toEqual([expect.objectContaining({ hostId: 'mx-snb', missing: expect.arrayContaining(['f16c']) })]);
      expect(r.body.change).toMatchObject({ previousMode: null, mode: 'SandyBridge', changed: true, by: 'alice' });
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body).toMatchObject({ mode: 'SandyBridge', effectiveMode: 'SandyBridge' });

      const events = await waitFor('the imc-mode-changed event', async () => {
        const e = await imcEvents(id);
        return e.length > 0 && e;
      });
      expect(events).toEqual([{ oldMode: null, newMode: 'SandyBridge', by: 'alice' }]);
    });

    it('refuses a host that lacks the cluster mode at join: the agent exits non-zero naming the features', async () => {
      const port = await freePort();
      const { code, output } = await runAgentToExit({ ...common, HOST_ID: 'mx-pen', CLUSTER_NAME: 'mixed', SIM_CPU: 'Penryn', PORT: String(port), SIM_TIME_SCALE: '0' });
      expect(code).not.toBe(0);
      expect(output).toMatch(/cannot join cluster mixed/);
      expect(output).toMatch(/SandyBridge/);
      for (const f of ['sse4.2', 'popcnt', 'aes', 'avx']) expect(output).toContain(f);
      expect((await api('GET', '/api/v1/hosts/mx-pen')).status).toBe(404);
    });

    it('lowers the mode when no running VM is above it, and raises it again when every host passes', async () => {
      const down = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'Westmere', by: 'mallory' }, await adminNamed('bob'));
      expect(down.status).toBe(200);
      expect(down.body).toMatchObject({ previousMode: 'SandyBridge', mode: 'Westmere', changed: true, by: 'bob' });
      const up = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'SandyBridge' }, await adminNamed('bob'));
      expect(up.body).toMatchObject({ previousMode: 'Westmere', mode: 'SandyBridge', changed: true, by: 'bob' });
      const again = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'sandybridge' });
      expect(again.body).toMatchObject({ mode: 'SandyBridge', changed: false });
      const events = await waitFor('three events', async () => {
        const e = await imcEvents(id);
        return e.length >= 3 && e;
      });
      expect(events).toEqual([
        { oldMode: null, newMode: 'SandyBridge', by: 'alice' },
        { oldMode: 'SandyBridge', newMode: 'Westmere', by: 'bob' },
        { oldMode: 'Westmere', newMode: 'SandyBridge', by: 'bob' },
      ]);
    });
  });

  describe('the plan of a cluster of mixed generations (Westmere, Haswell, Skylake-Server)', () => {
    let id: string;

    beforeAll(async () => {
      const created = await api('POST', '/api/v1/clusters', { name: 'plan' });
      expect(created.status).toBe(201);
      id = created.body.id;
      await Promise.all([
        startAgent('pl-wsm', 'Westmere', { CLUSTER_ID: id }),
        startAgent('pl-hsw', 'Haswell', { CLUSTER_ID: id }),
        startAgent('pl-skx', 'Skylake-Server', { CLUSTER_ID: id }),
      ]);
    }, 60_000);

    it('names the common mode, the host holding it down, the mode without each host and each host highest mode', async () => {
      const r = await api('GET', `/api/v1/clusters/${id}/imc/plan`, undefined, await testToken('viewer'));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ clusterId: id, mode: 'Westmere', holdingDown: ['pl-wsm'] });
      expect(r.body.reason).toContain('Westmere');
      const byHost = (rows: { hostId: string; mode: string | null }[]) => Object.fromEntries(rows.map((x) => [x.hostId, x.mode]));
      expect(byHost(r.body.hostModes)).toEqual({ 'pl-wsm': 'Westmere', 'pl-hsw': 'Haswell', 'pl-skx': 'Skylake-Server' });
      // without the old host the cluster rises to the next one's mode; without either newer one it stays
      expect(byHost(r.body.withoutHost)).toEqual({ 'pl-wsm': 'Haswell', 'pl-hsw': 'Westmere', 'pl-skx': 'Westmere' });
    });

    it('answers for a cluster without hosts (no mode, saying why) and 404 for an unknown cluster', async () => {
      const empty = await api('POST', '/api/v1/clusters', { name: 'plan-empty' });
      const r = await api('GET', `/api/v1/clusters/${empty.body.id}/imc/plan`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ clusterId: empty.body.id, mode: null, reason: 'cluster plan-empty has no hosts: there is no mode to plan', holdingDown: [], withoutHost: [], hostModes: [] });
      const unknown = await api('GET', `/api/v1/clusters/${randomUUID()}/imc/plan`);
      expect(unknown.status).toBe(404);
    });
  });

  describe('raising and lowering with running VMs', () => {
    let id: string;

    beforeAll(async () => {
      const created = await api('POST', '/api/v1/clusters', { name: 'ladder', imcMode: 'SandyBridge' });
      expect(created.status).toBe(201);
      id = created.body.id;
      await Promise.all([startAgent('ld-ivb', 'IvyBridge', { CLUSTER_ID: id }), startAgent('ld-hsw', 'Haswell', { CLUSTER_ID: id })]);
    }, 60_000);

    it('raises the mode when every host passes; running VMs keep their baseline', async () => {
      const old = await createVm('vm-snb', 'ld-hsw');
      expect(old.cpuBaseline).toBe('SandyBridge');
      expect(old.cpuFeatures).toBeUndefined();
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'IvyBridge' }, await adminNamed('raiser'));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ previousMode: 'SandyBridge', mode: 'IvyBridge', changed: true, verification: { pass: true } });
      expect((await api('GET', `/api/v1/vms/${old.id}`)).body).toMatchObject({ cpuBaseline: 'SandyBridge', state: 'running' });
      const fresh = await createVm('vm-ivb', 'ld-ivb');
      expect(fresh.cpuBaseline).toBe('IvyBridge');
      // published after the change commits (docs/events.md, "With its change")
      const events = await waitFor('the imc-mode-changed event', async () => {
        const e = await imcEvents(id);
        return e.length > 0 && e;
      });
      expect(events).toEqual([{ oldMode: 'SandyBridge', newMode: 'IvyBridge', by: 'raiser' }]);
    });

    it('a cpu-check shows what the guest sees against its baseline (sim: from its model), for an operator', async () => {
      const vm = (await api('GET', `/api/v1/vms?clusterId=${id}`)).body.items.find((v: { name: string }) => v.name === 'vm-snb');
      const r = await api('POST', `/api/v1/vms/${vm.id}/cpu-check`, undefined, await testToken('operator'));
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        ok: true,
        vmId: vm.id,
        hostId: 'ld-hsw',
        baseline: 'SandyBridge',
        source: 'model',
        missing: [],
        extra: [],
        exceptions: [{ feature: 'hypervisor', seen: true, reason: 'hypervisor-supplied' }],
      });
      // SandyBridge on a Haswell host: the guest sees AVX, not the host's AVX2
      expect(r.body.seen).toEqual(expect.arrayContaining(['aes', 'avx', 'hypervisor']));
      expect(r.body.seen).not.toContain('avx2');
      expect(Date.parse(r.body.checkedAt)).toBeGreaterThan(Date.now() - 60_000);
      expect((await api('POST', `/api/v1/vms/${vm.id}/cpu-check`, undefined, await testToken('viewer'))).status).toBe(403);
      const unknown = await api('POST', `/api/v1/vms/${randomUUID()}/cpu-check`);
      expect({ status: unknown.status, code: unknown.body.code }).toEqual({ status: 404, code: 'NOT_FOUND' });
    });

    it('refuses lowering below a running VM baseline, naming that VM only, and leaves the mode unchanged', async () => {
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'SandyBridge' });
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
      expect(r.body.message).toContain('vm-ivb');
      expect(r.body.message).not.toContain('vm-snb'); // SandyBridge is not above SandyBridge
      expect(r.body.details.vms).toEqual([expect.objectContaining({ name: 'vm-ivb', cpuBaseline: 'IvyBridge', hostId: 'ld-ivb' })]);
      // further down, both VMs are above the mode
      const merom = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'Merom' });
      expect(merom.status).toBe(409);
      expect(merom.body.details.vms.map((v: { name: string }) => v.name).sort()).toEqual(['vm-ivb', 'vm-snb']);
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body.mode).toBe('IvyBridge');
      expect(await imcEvents(id)).toHaveLength(1);
    });

    it('names the oldest ten VMs in the refusal and counts every one', async () => {
      for (let i = 0; i < 11; i++) await createVm(`vm-many-${String(i).padStart(2, '0')}`, 'ld-ivb'); // IvyBridge, the mode now
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'SandyBridge' });
      expect({ status: r.status, code: r.body.code }).toEqual({ status: 409, code: 'CONFLICT' });
      expect(r.body.details.vmCount).toBe(12);
      expect(r.body.details.vms.map((v: { name: string }) => v.name)).toEqual(['vm-ivb', ...Array.from({ length: 11 }, (_, i) => `vm-many-${String(i).padStart(2, '0')}`)]);
      expect(r.body.message).toContain('12 running VM(s) use a higher baseline');
      expect(r.body.message).toContain('vm-many-08');
      expect(r.body.message).not.toContain('vm-many-09');
      expect(r.body.message).toMatch(/ and 2 more$/);
      expect(r.body.message).not.toContain('vm-snb');
    });

    it('refuses raising above a host highest mode (422 naming the host and features) or to another vendor', async () => {
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'Haswell' });
      expect(r.status).toBe(422);
      expect(r.body.details.hosts).toEqual([expect.objectContaining({ hostId: 'ld-ivb', missing: expect.arrayContaining(['avx2', 'bmi1', 'fma']) })]);
      expect(r.body.message).toMatch(/ld-ivb lacks .*avx2/);
      const amd = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'EPYC' });
      expect(amd.status).toBe(422);
      expect(amd.body.details.hosts.map((h: { hostId: string; vendorMismatch: boolean }) => [h.hostId, h.vendorMismatch])).toEqual([
        ['ld-hsw', true],
        ['ld-ivb', true],
      ]);
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body.mode).toBe('IvyBridge');
    });
  });

  describe('a host whose vendor has no ladder (Zhaoxin)', () => {
    /** Registers a Zhaoxin host the way an agent does (NATS request), and returns the reply envelope. */
    async function registerZhaoxin(hostId: string, clusterName: string): Promise<any> {
      const nc = await connect({ servers: nats.url });
      try {
        const body = {
          hostId, clusterName, hostname: hostId, memoryMiB: 4096, vcpus: 4, driver: 'sim', migrationAddress: `${hostId}:49152`, instanceId: randomUUID(), vms: [],
          cpu: { vendor: 'Zhaoxin', modelName: 'ZHAOXIN KaiSheng KH-40000/16@2.2GHz', features: ['fpu', 'sse', 'sse2', 'sse4.2', 'avx', 'vmx', 'lm'] },
        };
        const msg = await nc.request(`${nats.prefix}.inventory.host.${hostId}.register`, new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 });
        return JSON.parse(new TextDecoder().decode(msg.data));
      } finally {
        await nc.close();
      }
    }

    it('is refused by a cluster with an IMC mode, naming the reason, and joins one whose mode is off', async () => {
      expect(await api('POST', '/api/v1/clusters', { name: 'zx-moded', imcMode: 'SandyBridge' })).toMatchObject({ status: 201 });
      const refused = await registerZhaoxin('zx-1', 'zx-moded');
      expect(refused).toMatchObject({ ok: false, error: { code: 'CPU_INCOMPATIBLE' } });
      expect(refused.error.message).toMatch(/zx-1 cannot join cluster zx-moded \(IMC mode SandyBridge\): Zhaoxin has no IMC ladder.*IMC mode is off/);
      expect((await api('GET', '/api/v1/hosts/zx-1')).status).toBe(404);

      expect(await api('POST', '/api/v1/clusters', { name: 'zx-off', imcMode: 'off' })).toMatchObject({ status: 201 });
      expect(await registerZhaoxin('zx-2', 'zx-off')).toMatchObject({ ok: true, data: { host: { id: 'zx-2', maxImcMode: null } } });
    });
  });

  describe('IMC off (host passthrough)', () => {
    let id: string;
    let vm: any;
    let hosts: Record<string, any>;

    beforeAll(async () => {
      const created = await api('POST', '/api/v1/clusters', { name: 'passthrough', imcMode: 'off' });
      expect(created.status).toBe(201);
      expect(created.body.imcMode).toBe('off');
      id = created.body.id;
      await Promise.all([
        startAgent('pt-ivb1', 'IvyBridge', { CLUSTER_ID: id }),
        startAgent('pt-ivb2', 'IvyBridge', { CLUSTER_ID: id }),
        startAgent('pt-snb', 'SandyBridge', { CLUSTER_ID: id }),
      ]);
      const page = (await api('GET', `/api/v1/hosts?clusterId=${id}`)).body;
      hosts = Object.fromEntries(page.items.map((h: HostListItem) => [h.id, withFeatures(h, page.featureSets)]));
    }, 60_000);

    it('a VM records baseline host-passthrough and the features of the host it started on', async () => {
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body).toMatchObject({ mode: 'off', passthrough: true, effectiveMode: 'host-passthrough' });
      vm = await createVm('vm-pt', 'pt-ivb1');
      expect(vm.cpuBaseline).toBe('host-passthrough');
      expect(vm.cpuFeatures).toEqual([...hosts['pt-ivb1'].cpu.features].sort());
      expect((await api('GET', `/api/v1/vms/${vm.id}`)).body.cpuFeatures).toEqual(vm.cpuFeatures);
    });

    it('the verdict allows only a host with the same feature set, naming what differs', async () => {
      const verdict = (target: { cpu: { vendor: string; features: string[] } }, vmFeatures?: string[]) =>
        call(cpu, 'POST', '/api/v1/cpu/verdict', { baseline: 'host-passthrough', target: { vendor: target.cpu.vendor, features: target.cpu.features }, ...(vmFeatures ? { vmFeatures } : {}) });
      const same = await verdict(hosts['pt-ivb2'], vm.cpuFeatures);
      expect(same.status).toBe(200);
      expect(same.body).toMatchObject({ compatible: true, baseline: 'host-passthrough', missing: [] });
      const older = await verdict(hosts['pt-snb'], vm.cpuFeatures);
      expect(older.status).toBe(422);
      expect(older.body.code).toBe('CPU_INCOMPATIBLE');
      expect(older.body.details.missing).toEqual(expect.arrayContaining(['f16c', 'rdrand', 'fsgsbase']));
      // a newer host is refused too: the guest would see features appear under it
      const newer = await verdict({ cpu: { vendor: 'Intel', features: [...vm.cpuFeatures, 'avx2'] } }, vm.cpuFeatures);
      expect(newer.status).toBe(422);
      expect(newer.body.message).toContain('avx2');
      expect(newer.body.details.missing).toEqual([]);
      const noFeatures = await verdict(hosts['pt-ivb2']);
      expect(noFeatures.status).toBe(400);
      expect(noFeatures.body.message).toMatch(/vmFeatures/);
    });

    it('the scheduler refuses the move to a different host at step 1 and completes it to an identical one', async () => {
      const settle = async (migrationId: string) =>
        waitFor(`migration ${migrationId} to finish`, async () => {
          const m = (await call(sched, 'GET', `/api/v1/migrations/${migrationId}`)).body;
          return ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(m.state) && m;
        }, { timeoutMs: 30_000 });
      const toSnb = await call(sched, 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'pt-snb' });
      expect(toSnb.status).toBe(202);
      const refused = await settle(toSnb.body.id);
      expect(refused.state).not.toBe('completed');
      expect(refused.failure).toMatchObject({ step: 1, code: 'CPU_INCOMPATIBLE' });
      expect(refused.failure.message).toMatch(/f16c/);
      expect((await api('GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('pt-ivb1');

      const before = await api('POST', `/api/v1/vms/${vm.id}/cpu-check`);
      expect(before.body).toMatchObject({ ok: true, hostId: 'pt-ivb1', baseline: 'host-passthrough', source: 'model', missing: [], extra: [] });
      const toIvb2 = await call(sched, 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'pt-ivb2' });
      expect(toIvb2.status).toBe(202);
      expect((await settle(toIvb2.body.id)).state).toBe('completed');
      expect((await api('GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({ hostId: 'pt-ivb2', cpuBaseline: 'host-passthrough', cpuFeatures: vm.cpuFeatures });
      // the guest sees the same CPU on its new host: the features it started with
      const after = await api('POST', `/api/v1/vms/${vm.id}/cpu-check`);
      expect(after.body).toMatchObject({ ok: true, hostId: 'pt-ivb2', missing: [], extra: [] });
      expect(after.body.seen).toEqual(before.body.seen);
    });

    it('turning IMC on while a passthrough VM runs is refused naming it (it runs above any mode)', async () => {
      const r = await api('PUT', `/api/v1/clusters/${id}/imc`, { mode: 'SandyBridge' });
      expect(r.status).toBe(409);
      expect(r.body.details.vms).toEqual([expect.objectContaining({ name: 'vm-pt', cpuBaseline: 'host-passthrough' })]);
      expect((await api('GET', `/api/v1/clusters/${id}/imc`)).body.mode).toBe('off');
    });
  });
  describe('a cluster of 1,100 hosts of a current CPU (DiamondRapids), more than one NATS message holds one by one', () => {
    const size = 1_100;
    let id: string;
    let fleet: Launched;

    beforeAll(async () => {
      fleet = launchService('agent', {
        entry: 'fleet',
        env: { ...common, FLEET_SIZE: String(size), FLEET_HOST_PREFIX: 'dmr', FLEET_CPUS: 'DiamondRapids', CLUSTER_NAME: 'big', SIM_TIME_SCALE: '0' },
      });
      await waitFor(`${size} hosts to register`, async () => {
        const c = (await api('GET', '/api/v1/clusters')).body.items.find((x: { name: string }) => x.name === 'big');
        if (!c) return false;
        id = c.id;
        const pages = [await api('GET', `/api/v1/hosts?clusterId=${id}&limit=1000`)];
        if (pages[0]!.body.nextCursor) pages.push(await api('GET', `/api/v1/hosts?clusterId=${id}&limit=1000&cursor=${pages[0]!.body.nextCursor}`));
        return pages.flatMap((p) => p.body.items).length === size;
      }, { timeoutMs: 90_000, intervalMs: 1_000 });
    }, 120_000);

    afterAll(() => fleet?.stop());

    it('sent host by host, its hosts would be more than the NATS server takes in one message', async () => {
      const nc = await connect({ servers: nats.url });
      const maxPayload = nc.info!.max_payload;
      await nc.close();
      const one = (await api('GET', '/api/v1/hosts/dmr-0001')).body;
      const flat = JSON.stringify({ hosts: Array.from({ length: size }, (_, i) => ({ id: `dmr-${i}`, vendor: one.cpu.vendor, features: one.cpu.features })) });
      expect(flat.length).toBeGreaterThan(maxPayload);
    });

    it('lists its hosts a page of 1,000 at a time, over HTTP and over NATS, each feature list once a page', async () => {
      const page = (await api('GET', `/api/v1/hosts?clusterId=${id}&limit=1000`)).body;
      expect(page.items).toHaveLength(1000);
      expect(page.nextCursor).not.toBeNull();
      expect(Object.keys(page.featureSets)).toEqual([page.items[0].cpu.featureSet]);
      expect(withFeatures(page.items[0], page.featureSets).cpu).toEqual((await api('GET', `/api/v1/hosts/${page.items[0].id}`)).body.cpu);
      // host by host with their lists, these 1,000 were about 2 MB: more than one NATS message holds
      const bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'imc-test-host-list' });
      try {
        const overNats = await bus.request(ListHosts, { clusterId: id, limit: 1000 });
        expect(overNats.hosts.map((h) => h.id)).toEqual(page.items.map((h: HostListItem) => h.id));
        expect(overNats.featureSets).toEqual(page.featureSets);
      } finally {
        await bus.close();
      }
    });

    it("plans it: every host's mode in id order, and the mode every host holds", async () => {
      const r = await api('GET', `/api/v1/clusters/${id}/imc/plan`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ clusterId: id, mode: 'DiamondRapids' });
      const ids = r.body.hostModes.map((h: { hostId: string }) => h.hostId);
      expect(ids).toHaveLength(size);
      expect(ids).toEqual([...ids].sort());
      expect(new Set(r.body.hostModes.map((h: { mode: string }) => h.mode))).toEqual(new Set(['DiamondRapids']));
      expect(r.body.withoutHost.map((h: { hostId: string }) => h.hostId)).toEqual(ids);
    });

    it('verifies a mode against every host, and shows the cluster with its mode', async () => {
      const v = await api('POST', `/api/v1/clusters/${id}/imc/verify`, { mode: 'Skylake-Server' });
      expect(v.status).toBe(200);
      expect(v.body).toMatchObject({ mode: 'Skylake-Server', pass: true });
      expect(v.body.hosts).toHaveLength(size);
      const imc = await api('GET', `/api/v1/clusters/${id}/imc`);
      expect(imc.body).toMatchObject({ commonMode: 'DiamondRapids', effectiveMode: 'DiamondRapids' });
      // the same small answer at any number of hosts: they are counted, not listed (GET /api/v1/hosts?clusterId= lists them)
      const detail = await api('GET', `/api/v1/clusters/${id}`);
      expect(detail.body).toMatchObject({ effectiveMode: 'DiamondRapids', hostCount: size, plan: { mode: 'DiamondRapids' } });
      expect(detail.body).not.toHaveProperty('hosts');
      expect(JSON.stringify(detail.body).length).toBeLessThan(2_000);
    });

    it('gives a VM created there the mode every host holds', async () => {
      const vm = await createVm('vm-big', 'dmr-0001');
      expect(vm).toMatchObject({ clusterId: id, cpuBaseline: 'DiamondRapids' });
    });
  });
});
