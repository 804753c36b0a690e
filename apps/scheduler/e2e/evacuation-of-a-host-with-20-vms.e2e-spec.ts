import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor, httpJson } from '@flexmig/testing';

/**
 * Host maintenance, end to end with real processes: a host running 20 VMs is evacuated; every VM is
 * live-migrated away through placement and the admission queue, never more at once than the limits
 * allow; the host ends in maintenance and empty. In a second cluster, a VM too big for any other host
 * is listed with the reason it could not move.
 */
describe('evacuation of a host with 20 VMs (real processes)', () => {
  let nats: TestNats;
  let db: TestDatabase;
  const procs: ServiceProcess[] = [];
  const url: Record<string, string> = {};
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-evac-agents-')); // the agents' ledgers, the suite's own
  const limits = { MAX_OUTBOUND_PER_HOST: 2, MAX_INBOUND_PER_HOST: 0, MAX_PER_CLUSTER: 5 }; // 0 = unlimited
  const agents = [
    // cluster `evac`: compatible CPUs (VMs get the highest baseline all four pass: SandyBridge), room for all
    { id: 'evac-src', cluster: 'evac', cpu: 'IvyBridge', memoryMiB: 65_536 },
    { id: 'evac-t1', cluster: 'evac', cpu: 'SandyBridge', memoryMiB: 65_536 },
    { id: 'evac-t2', cluster: 'evac', cpu: 'IvyBridge', memoryMiB: 65_536 },
    { id: 'evac-t3', cluster: 'evac', cpu: 'IvyBridge', memoryMiB: 65_536 },
    // cluster `tight`: the only other host is too small for the big VM
    { id: 'tight-big', cluster: 'tight', cpu: 'IvyBridge', memoryMiB: 65_536 },
    { id: 'tight-small', cluster: 'tight', cpu: 'IvyBridge', memoryMiB: 8_192 },
  ];

  const http = (service: string, method: string, path: string, body?: unknown) => httpJson(url[service], method, path, body);

  const finished = (id: string) =>
    waitFor(
      `evacuation ${id} to finish`,
      async () => {
        const { body } = await http('scheduler', 'GET', `/api/v1/evacuations/${id}`);
        return body.state && body.state !== 'running' ? body : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 250 },
    );

  beforeAll(async () => {
    nats = await startTestNats('e2e-evac', { auth: true }); // every process with its own identity, as `npm start` runs
    db = await startTestDatabase('e2e-evac');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    for (const app of ['cpu-compat', 'inventory', 'scheduler'] as const) {
      const port = await freePort();
      url[app] = `http://127.0.0.1:${port}`;
      const env = app === 'scheduler' ? { ...common, ...Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, String(v)])) } : common;
      procs.push(await new ServiceProcess(app, { ...env, ...nats.serviceEnv(app), PORT: String(port) }, port).start());
    }
    for (const a of agents) {
      const port = await freePort();
      procs.push(
        await new ServiceProcess(
          'agent',
          {
            ...common,
            ...(await nats.agentEnv(a.id)),
            PORT: String(port),
            HOST_ID: a.id,
            CLUSTER_NAME: a.cluster,
            AGENT_STATE_DIR: stateDir,
            SIM_CPU: a.cpu,
            SIM_MEMORY_MIB: String(a.memoryMiB),
            SIM_TIME_SCALE: '0.02',
            HEARTBEAT_INTERVAL_MS: '500',
          },
          port,
          a.id,
        ).start(),
      );
    }
    await waitFor('every host up', async () => {
      const { body } = await http('inventory', 'GET', '/api/v1/hosts');
      return body.items?.filter((h: any) => h.state === 'up').length === agents.length;
    });
  }, 180_000);

  afterAll(async () => {
    for (const p of procs.reverse()) await p.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('refuses an unknown host (404) and a malformed body (400)', async () => {
    const unknown = await http('scheduler', 'POST', '/api/v1/evacuations', { hostId: 'no-such-host' });
    expect([unknown.status, unknown.body.code]).toEqual([404, 'NOT_FOUND']);
    const malformed = await http('scheduler', 'POST', '/api/v1/evacuations', { host: 'evac-src' });
    expect([malformed.status, malformed.body.code]).toEqual([400, 'VALIDATION_FAILED']);
    expect((await http('scheduler', 'GET', '/api/v1/evacuations')).body.items).toEqual([]);
  });

  it('moves all 20 VMs away within the limits; the host ends in maintenance and empty', async () => {
    const vmIds: string[] = [];
    for (let i = 1; i <= 20; i++) {
      const created = await http('inventory', 'POST', '/api/v1/vms', { name: `evac-vm-${i}`, hostId: 'evac-src', memoryMiB: 2_048, vcpus: 1 });
      expect(created.status).toBe(201);
      vmIds.push(created.body.id);
    }

    const accepted = await http('scheduler', 'POST', '/api/v1/evacuations', { hostId: 'evac-src' });
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ hostId: 'evac-src', counts: { total: 20, notMoved: 0 } });

    // while it runs: a second evacuation of the host is refused, and the host takes no new VM
    const again = await http('scheduler', 'POST', '/api/v1/evacuations', { hostId: 'evac-src' });
    expect([again.status, again.body.code]).toEqual([409, 'CONFLICT']);
    expect(again.body.message).toContain(accepted.body.id);
    const newVm = await http('inventory', 'POST', '/api/v1/vms', { name: 'latecomer', hostId: 'evac-src', memoryMiB: 1_024, vcpus: 1 });
    expect([newVm.status, newVm.body.code]).toEqual([409, 'HOST_IN_MAINTENANCE']);

    const evacuation = await finished(accepted.body.id);
    expect(evacuation.state).toBe('completed');
    expect(evacuation.counts).toEqual({ total: 20, moving: 0, moved: 20, failed: 0, notMoved: 0 });
    expect(evacuation.finishedAt).not.toBeNull();
    expect(new Set(evacuation.vms.map((v: any) => v.vmId))).toEqual(new Set(vmIds));

    // inventory agrees: every VM runs on another host of the cluster; the host is in maintenance and empty
    const targets = new Set<string>();
    for (const item of evacuation.vms) {
      const vm = (await http('inventory', 'GET', `/api/v1/vms/${item.vmId}`)).body;
      expect(vm.state).toBe('running');
      expect(vm.hostId).not.toBe('evac-src');
      expect(vm.hostId).toBe(item.targetHostId);
      targets.add(vm.hostId);
    }
    expect([...targets].every((t) => ['evac-t1', 'evac-t2', 'evac-t3'].includes(t))).toBe(true);
    expect(targets.size).toBeGreaterThan(1); // placement spreads the load
    const host = (await http('inventory', 'GET', '/api/v1/hosts/evac-src')).body;
    expect(host).toMatchObject({ maintenance: true, allocatedMemoryMiB: 0, allocatedVcpus: 0 });
    expect((await http('inventory', 'GET', '/api/v1/vms?hostId=evac-src')).body.items).toEqual([]);

    // no migration failed, and the recorded step times never show more in flight than the limits:
    // a migration holds its slots from the start of step 1 to the end of step 9
    const migrations = await Promise.all(evacuation.vms.map(async (v: any) => (await http('scheduler', 'GET', `/api/v1/migrations/${v.migrationId}`)).body));
    for (const m of migrations) {
      expect(m.state).toBe('completed');
      expect(m.failure).toBeNull();
      expect(m.placement).toMatchObject({ chosen: m.targetHostId });
    }
    const edges = migrations.flatMap((m: any) => [
      { t: Date.parse(m.steps[0].startedAt), d: +1, m },
      { t: Date.parse(m.steps[8].endedAt), d: -1, m },
    ]);
    edges.sort((a, b) => a.t - b.t || a.d - b.d); // an end and a start at the same instant do not overlap
    const outbound = new Map<string, number>();
    const inbound = new Map<string, number>();
    let inCluster = 0;
    let maxOutbound = 0;
    let maxInCluster = 0;
    for (const e of edges) {
      outbound.set(e.m.sourceHostId, (outbound.get(e.m.sourceHostId) ?? 0) + e.d);
      inbound.set(e.m.targetHostId, (inbound.get(e.m.targetHostId) ?? 0) + e.d);
      inCluster += e.d;
      maxOutbound = Math.max(maxOutbound, ...outbound.values());
      maxInCluster = Math.max(maxInCluster, inCluster);
    }
    expect(maxOutbound).toBeLessThanOrEqual(limits.MAX_OUTBOUND_PER_HOST);
    expect(maxInCluster).toBeLessThanOrEqual(limits.MAX_PER_CLUSTER);

    const listed = (await http('scheduler', 'GET', '/api/v1/evacuations?hostId=evac-src')).body.items;
    expect(listed.map((e: any) => [e.id, e.state])).toEqual([[accepted.body.id, 'completed']]);
  });

  it('lists a VM that cannot move with the reason, and moves the others', async () => {
    const huge = await http('inventory', 'POST', '/api/v1/vms', { name: 'huge', hostId: 'tight-big', memoryMiB: 16_384, vcpus: 2 });
    const tiny = await http('inventory', 'POST', '/api/v1/vms', { name: 'tiny', hostId: 'tight-big', memoryMiB: 1_024, vcpus: 1 });
    expect([huge.status, tiny.status]).toEqual([201, 201]);

    const accepted = await http('scheduler', 'POST', '/api/v1/evacuations', { hostId: 'tight-big' });
    expect(accepted.status).toBe(202);
    const evacuation = await finished(accepted.body.id);
    expect(evacuation.state).toBe('completed-with-failures');
    expect(evacuation.counts).toEqual({ total: 2, moving: 0, moved: 1, failed: 0, notMoved: 1 });

    const stuck = evacuation.vms.find((v: any) => v.name === 'huge');
    expect(stuck).toMatchObject({ vmId: huge.body.id, migrationId: null, outcome: 'not-moved', code: 'INSUFFICIENT_CAPACITY' });
    expect(stuck.reason).toContain('tight-small: not enough free memory');
    expect(stuck.reason).toContain("tight-big: it is the VM's source host");
    expect((await http('inventory', 'GET', `/api/v1/vms/${huge.body.id}`)).body).toMatchObject({ hostId: 'tight-big', state: 'running' });

    const moved = evacuation.vms.find((v: any) => v.name === 'tiny');
    expect(moved).toMatchObject({ outcome: 'moved', migrationState: 'completed', targetHostId: 'tight-small', reason: null });
    expect((await http('inventory', 'GET', `/api/v1/vms/${tiny.body.id}`)).body.hostId).toBe('tight-small');

    // the host stays in maintenance (the operator takes it out), and can be evacuated again once this one ended
    expect((await http('inventory', 'GET', '/api/v1/hosts/tight-big')).body.maintenance).toBe(true);
    const out = await http('inventory', 'PUT', '/api/v1/hosts/tight-big/maintenance', { maintenance: false });
    expect([out.status, out.body.maintenance]).toEqual([200, false]);
  });
});
