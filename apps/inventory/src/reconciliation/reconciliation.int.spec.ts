import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListAgentVms, StartVm } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { freePort, httpJson, readEvents, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor } from '@flexmig/testing';

// Inventory reconciled with the agents (issue 10, item 4), with cpu-compat, inventory and simulated
// agents as real processes against real PostgreSQL and NATS (`npm run build` first).

const RECONCILE_INTERVAL_MS = 1_000;
const HOST_DOWN_AFTER_MS = 3_000;

describe('inventory reconciled with the agents', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let bus: NatsBus;
  let inv: string;
  let common: Record<string, string>;
  const services: ServiceProcess[] = [];
  const dirs: string[] = [];
  const stateDir = () => {
    const d = mkdtempSync(path.join(tmpdir(), 'flexmig-recon-'));
    dirs.push(d);
    return d;
  };
  const api = (method: string, route: string, body?: unknown) => httpJson(inv, method, route, body);
  const findings = async () => (await api('GET', '/api/v1/reconciliation')).body.items as { kind: string; vmId: string; hostId: string; otherHostIds: string[]; pausedHostIds: string[] }[];
  const host = async (id: string) => (await api('GET', `/api/v1/hosts/${id}`)).body as { agentInstanceId: string; lastHeartbeatAt: string; registeredAt: string; state: string };
  const agentVms = async (hostId: string) => (await bus.request(ListAgentVms, {}, { params: { hostId } })).vms;

  /** A sim agent process; `wait`: until inventory lists its host. */
  async function agent(hostId: string, dir = stateDir(), wait = true): Promise<ServiceProcess> {
    const port = await freePort();
    const p = new ServiceProcess('agent', { ...common, HOST_ID: hostId, PORT: String(port), AGENT_STATE_DIR: dir, SIM_TIME_SCALE: '0', HEARTBEAT_INTERVAL_MS: '500' }, port, `agent ${hostId}`);
    services.push(p);
    await p.start();
    if (wait) await waitFor(`host ${hostId} to register`, async () => (await api('GET', `/api/v1/hosts/${hostId}`)).status === 200);
    return p;
  }

  async function createVm(name: string, hostId: string): Promise<string> {
    const r = await api('POST', '/api/v1/vms', { name, hostId, memoryMiB: 512, vcpus: 1 });
    expect(r.status).toBe(201);
    return r.body.id;
  }

  /** A VM started on a host behind inventory's back, as an agent left alone would (after a StartVm that timed out). */
  const startBehindInventory = (hostId: string, id: string) =>
    bus.request(StartVm, { vm: { id, name: `stray-${id.slice(0, 8)}`, memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' } }, { params: { hostId } });

  beforeAll(async () => {
    nats = await startTestNats('recon');
    db = await startTestDatabase('recon');
    common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn' };
    const [cpuPort, invPort] = [await freePort(), await freePort()];
    inv = `http://127.0.0.1:${invPort}`;
    const cpu = new ServiceProcess('cpu-compat', { ...common, PORT: String(cpuPort) }, cpuPort);
    const inventory = new ServiceProcess(
      'inventory',
      { ...common, DATABASE_URL: db.url, PORT: String(invPort), RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS), HOST_DOWN_AFTER_MS: String(HOST_DOWN_AFTER_MS), HOST_CHECK_INTERVAL_MS: '250' },
      invPort,
    );
    services.push(cpu, inventory);
    // one after the other: on a loaded machine, starting together can push one past its readiness wait
    await cpu.start();
    await inventory.start();
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'recon-test', requestTimeoutMs: 5_000 });
    await agent('rc-a');
    await agent('rc-b');
  }, 120_000);

  afterAll(async () => {
    await bus?.close();
    await Promise.all(services.map((s) => s.stop()));
    await db?.stop();
    await nats?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }, 60_000);

  it('given VMs that run where inventory records them, then the report is empty', async () => {
    await createVm('quiet', 'rc-a');
    await waitFor('a reconciliation pass', async () => (await api('GET', '/api/v1/reconciliation')).body.lastPassAt !== null);
    await new Promise((r) => setTimeout(r, RECONCILE_INTERVAL_MS * 3));
    const r = await api('GET', '/api/v1/reconciliation');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ intervalMs: RECONCILE_INTERVAL_MS, items: [] });
    expect(r.body.hostsChecked).toBeGreaterThanOrEqual(2);
    // each pass counted and timed, for the alerts (deploy/helm: FlexmigReconciliationStalled)
    const metrics = await (await fetch(`${inv}/metrics`)).text();
    expect(Number(/^flexmig_reconciliation_passes_total\{result="ok"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    expect(metrics).toMatch(/^flexmig_reconciliation_passes_total\{result="failed"\} 0$/m);
    expect(Number(/^flexmig_reconciliation_pass_duration_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
  });

  it('given a VM an agent runs that inventory has no record of, then vm.orphaned and a row for it', async () => {
    const id = randomUUID();
    await startBehindInventory('rc-b', id);
    const row = await waitFor('the orphan in the report', async () => (await findings()).find((f) => f.vmId === id));
    expect(row).toMatchObject({ kind: 'orphaned', hostId: 'rc-b' });
    const events = await waitFor('vm.orphaned', async () => (await readEvents(nats.url, nats.prefix, 'vm.orphaned')).filter((e) => e.data.vmId === id).length > 0 || undefined);
    expect(events).toBe(true);
  });

  it("given a VM that runs on its host and on another, then the other copy is paused (not destroyed) and vm.split-brain names it", async () => {
    const id = await createVm('twice', 'rc-a');
    await startBehindInventory('rc-b', id);
    const row = await waitFor('the split brain in the report, its other copy paused', async () =>
      (await findings()).find((f) => f.vmId === id && f.kind === 'split-brain' && f.pausedHostIds.includes('rc-b')),
    );
    expect(row).toMatchObject({ hostId: 'rc-a', otherHostIds: ['rc-b'], pausedHostIds: ['rc-b'] });
    expect((await agentVms('rc-b')).find((v) => v.vmId === id)?.state).toBe('paused');
    expect((await agentVms('rc-a')).find((v) => v.vmId === id)?.state).toBe('running');
    const events = await waitFor('vm.split-brain', async () => (await readEvents<{ vmId: string; paused: string[]; hostId: string }>(nats.url, nats.prefix, 'vm.split-brain')).find((e) => e.data.vmId === id));
    expect(events.data).toMatchObject({ hostId: 'rc-a', paused: ['rc-b'] });
    expect((await api('GET', `/api/v1/vms/${id}`)).body).toMatchObject({ hostId: 'rc-a', state: 'running' });
  });

  it('given more findings than a page, then the pages walked with their cursors hold each once, in the order of one big page; kind filters; a foreign cursor is refused', async () => {
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const id of ids) await startBehindInventory('rc-b', id);
    await waitFor('the five orphans in the report', async () => {
      const all = (await api('GET', '/api/v1/reconciliation?limit=1000')).body.items as { vmId: string }[];
      return ids.every((id) => all.some((f) => f.vmId === id));
    });
    type Key = { kind: string; vmId: string; hostId: string };
    const keysOf = (items: Key[]) => items.map((f) => `${f.kind}/${f.vmId}/${f.hostId}`);
    const onePage = async () => keysOf((await api('GET', '/api/v1/reconciliation?limit=1000')).body.items);
    // each pass replaces the set: walk until a walk and the big page around it agree (nothing changed meanwhile)
    const { walked, whole, pages } = await waitFor('a walk of pages of 2 that matches one big page', async () => {
      const before = await onePage();
      const keys: string[] = [];
      let cursor: string | null = null;
      let n = 0;
      do {
        const r = await api('GET', `/api/v1/reconciliation?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(r.status).toBe(200);
        expect(r.body.items.length).toBeLessThanOrEqual(2);
        keys.push(...keysOf(r.body.items));
        cursor = r.body.nextCursor;
        if (++n > 100) throw new Error('more than 100 pages of 2: the cursor is not followed');
      } while (cursor);
      const after = await onePage();
      return JSON.stringify(before) === JSON.stringify(after) && { walked: keys, whole: after, pages: n };
    });
    expect(whole.length).toBeGreaterThanOrEqual(5);
    expect(pages).toBe(Math.ceil(whole.length / 2));
    expect(walked).toEqual(whole);
    const orphans = (await api('GET', '/api/v1/reconciliation?kind=orphaned&limit=1000')).body.items as Key[];
    expect(orphans.every((f) => f.kind === 'orphaned')).toBe(true);
    expect(orphans.map((f) => f.vmId)).toEqual(expect.arrayContaining(ids));
    const foreign = await api('GET', `/api/v1/reconciliation?cursor=${Buffer.from('v1:rc-b').toString('base64url')}`);
    expect(foreign.status).toBe(400);
    expect(foreign.body.code).toBe('VALIDATION_FAILED');
    const misspelt = await api('GET', '/api/v1/reconciliation?kinds=orphaned');
    expect(misspelt.status).toBe(400);
    for (const junk of ['limit=0', 'limit=1001', 'limit=two', 'kind=stray', `cursor=${'A'.repeat(300)}`, 'cursor=%2F%2F']) {
      const r = await api('GET', `/api/v1/reconciliation?${junk}`);
      expect({ junk, status: r.status, code: r.body.code }).toEqual({ junk, status: 400, code: 'VALIDATION_FAILED' });
    }
  });

  it('given a second agent with a HOST_ID whose agent heartbeats, then it is refused, exits non-zero, and the first keeps the host', async () => {
    const before = await host('rc-a');
    const second = await agent('rc-a', stateDir(), false);
    const exit = await Promise.race([second.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000))]);
    expect(exit).toMatchObject({ code: expect.any(Number) });
    expect((exit as { code: number }).code).not.toBe(0);
    expect(second.output.join('\n')).toMatch(/HOST_OWNED_BY_ANOTHER_AGENT|held by agent instance/);
    const after = await waitFor('a heartbeat of the first agent after the refusal', async () => {
      const h = await host('rc-a');
      return Date.parse(h.lastHeartbeatAt) > Date.now() - 1_000 && h;
    });
    expect(after).toMatchObject({ agentInstanceId: before.agentInstanceId, registeredAt: before.registeredAt, state: 'up' });
  }, 60_000);

  it('given a VM destroyed behind inventory\'s back (its host came back without it), then vm.missing within one reconcile interval', async () => {
    const first = await agent('rc-c');
    const id = await createVm('lost', 'rc-c');
    const owner = (await host('rc-c')).agentInstanceId;
    await first.kill();
    // while it is down, its VM set is unknown: listed so, and its VM not called missing
    const down = await waitFor('a pass that holds the host unknown', async () => {
      const r = (await api('GET', '/api/v1/reconciliation')).body as { hostsUnknown: string[]; items: { vmId: string }[] };
      return r.hostsUnknown.includes('rc-c') && r;
    });
    expect(down.items.filter((f) => f.vmId === id)).toEqual([]);
    // the host comes back without its VMs (a state directory of its own, empty): the VM is gone
    await agent('rc-c', stateDir(), false);
    const registered = await waitFor('the new agent to take the host over once the first is silent', async () => {
      const h = await host('rc-c');
      return h.agentInstanceId !== owner && h;
    });
    const missing = await waitFor(
      'vm.missing',
      async () => (await readEvents<{ vmId: string; hostId: string; detectedAt: string }>(nats.url, nats.prefix, 'vm.missing')).find((e) => e.data.vmId === id),
      { timeoutMs: RECONCILE_INTERVAL_MS * 10 },
    );
    expect(missing.data.hostId).toBe('rc-c');
    // timing goals are not asserted (a loaded machine); the delay from the report to the event is shown
    console.log(`vm.missing ${Date.parse(missing.data.detectedAt) - Date.parse(registered.registeredAt)} ms after the agent's report (interval ${RECONCILE_INTERVAL_MS} ms)`);
    expect((await findings()).find((f) => f.vmId === id)).toMatchObject({ kind: 'missing', hostId: 'rc-c' });
  }, 60_000);
});
