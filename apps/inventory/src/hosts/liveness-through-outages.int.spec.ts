import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, httpJson, readEvents, ServiceProcess, startTestDatabase, startTestNats, TcpProxy, TestDatabase, TestNats, waitFor } from '@flexmig/testing';

// A host's silence is the host's own only if inventory could hear it (hearing.ts). Inventory reaches NATS
// and PostgreSQL through proxies that a test closes for twice HOST_DOWN_AFTER_MS, as an outage of either
// does; the agents (sim, real processes) keep beating. Before, every host was marked down after such an
// outage (a host.down each) and up at its next beat. A cut without a reset, which inventory's NATS client does
// not see at once, is caught by the sweep's count of hosts silent at once (massSilence). `npm run build` first.

const HOST_DOWN_AFTER_MS = 2_000;
const OUTAGE_MS = 2 * HOST_DOWN_AFTER_MS;

describe('host liveness through a NATS or PostgreSQL outage of inventory', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let natsProxy: TcpProxy;
  let pgProxy: TcpProxy;
  let inv: string;
  let common: Record<string, string>;
  const services: ServiceProcess[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-liveness-'));

  const state = async (id: string) => (await httpJson(inv, 'GET', `/api/v1/hosts/${id}`)).body.state as string;
  const downEvents = async () => (await readEvents<{ hostId: string }>(nats.url, nats.prefix, 'host.down')).map((e) => e.data.hostId);
  const lastBeat = async (id: string) => Date.parse((await httpJson(inv, 'GET', `/api/v1/hosts/${id}`)).body.lastHeartbeatAt as string);
  /** Silent hosts the sweep held back from marking down (a mass silence), from inventory's metrics. */
  const held = async () => Number((await (await fetch(`${inv}/metrics`)).text()).match(/^flexmig_inventory_hosts_silence_held (\d+)$/m)?.[1]);
  const ready = async () => (await fetch(`${inv}/health/ready`).catch(() => undefined))?.status === 200;

  async function agent(hostId: string): Promise<ServiceProcess> {
    const port = await freePort();
    const p = new ServiceProcess('agent', { ...common, HOST_ID: hostId, PORT: String(port), AGENT_STATE_DIR: dir, SIM_TIME_SCALE: '0', HEARTBEAT_INTERVAL_MS: '500' }, port, `agent ${hostId}`);
    services.push(p);
    await p.start();
    await waitFor(`host ${hostId} to register`, async () => (await httpJson(inv, 'GET', `/api/v1/hosts/${hostId}`)).status === 200);
    return p;
  }

  /** Cuts inventory off for OUTAGE_MS, then waits until it has heard every host beat again, and for one window more. */
  async function outage(proxy: TcpProxy, hosts: string[], meanwhile: () => Promise<void> = async () => undefined): Promise<void> {
    await proxy.stop(); // its connections closed, nothing listening: as a restart of the server
    await meanwhile();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const back = Date.now();
    await proxy.start();
    await waitFor('inventory ready again', ready, { timeoutMs: 20_000 });
    for (const h of hosts) await waitFor(`a beat of ${h} heard again`, async () => (await lastBeat(h)) > back || undefined, { timeoutMs: 10_000 });
    // long enough for a sweep that judged (or would judge) the silence of the outage
    await new Promise((r) => setTimeout(r, HOST_DOWN_AFTER_MS + 500));
  }

  beforeAll(async () => {
    nats = await startTestNats('liveness');
    db = await startTestDatabase('liveness');
    natsProxy = await new TcpProxy(Number(new URL(nats.url).port)).start();
    const pgUrl = new URL(db.url);
    pgProxy = await new TcpProxy(Number(pgUrl.port || 5432), pgUrl.hostname).start();
    pgUrl.host = pgProxy.url;
    common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn' };
    const [cpuPort, invPort] = [await freePort(), await freePort()];
    inv = `http://127.0.0.1:${invPort}`;
    const cpu = new ServiceProcess('cpu-compat', { ...common, PORT: String(cpuPort) }, cpuPort);
    const inventory = new ServiceProcess(
      'inventory',
      { ...common, NATS_URL: `nats://${natsProxy.url}`, DATABASE_URL: pgUrl.toString(), PORT: String(invPort), HOST_DOWN_AFTER_MS: String(HOST_DOWN_AFTER_MS), HOST_CHECK_INTERVAL_MS: '250' },
      invPort,
    );
    services.push(cpu, inventory);
    await cpu.start();
    await inventory.start();
    await agent('lv-a');
    await agent('lv-b');
    await agent('lv-c');
    await agent('lv-d');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await natsProxy?.stop();
    await pgProxy?.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('given inventory cut from NATS for twice HOST_DOWN_AFTER_MS, then no host that went on beating is marked down, and one that stopped meanwhile is', async () => {
    const lvC = services.find((s) => s.label === 'agent lv-c')!;
    const before = (await downEvents()).length;
    await outage(natsProxy, ['lv-a', 'lv-b', 'lv-d'], () => lvC.stop());
    await waitFor('lv-c, silent on its own account, marked down', async () => (await state('lv-c')) === 'down' || undefined, { timeoutMs: 15_000 });
    await waitFor('host.down of lv-c', async () => (await downEvents()).includes('lv-c') || undefined, { timeoutMs: 10_000 });
    expect((await downEvents()).slice(before)).toEqual(['lv-c']);
    expect([await state('lv-a'), await state('lv-b'), await state('lv-d')]).toEqual(['up', 'up', 'up']);
  });

  it('given inventory cut from PostgreSQL for twice HOST_DOWN_AFTER_MS, then no host that went on beating is marked down', async () => {
    const before = (await downEvents()).length;
    await outage(pgProxy, ['lv-a', 'lv-b', 'lv-d']);
    expect((await downEvents()).slice(before)).toEqual([]);
    expect([await state('lv-a'), await state('lv-b'), await state('lv-d')]).toEqual(['up', 'up', 'up']);
  });

  it('given inventory cut from NATS silently (no reset, no FIN: its client still counts itself connected) for twice HOST_DOWN_AFTER_MS, then the hosts silent all at once are held, not marked down', async () => {
    const beating = ['lv-a', 'lv-b', 'lv-d'];
    const before = (await downEvents()).length;
    expect(await held()).toBe(0);
    natsProxy.partition(); // NATS_PING_INTERVAL_MS (10 s) would see it only after this test's outage
    try {
      await waitFor('the sweep holding every beating host', async () => (await held()) === beating.length || undefined, { timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, OUTAGE_MS - HOST_DOWN_AFTER_MS));
      expect(await Promise.all(beating.map(state))).toEqual(['up', 'up', 'up']);
    } finally {
      natsProxy.heal(); // what waited goes through, as TCP retransmits after a partition ends
    }
    const back = Date.now();
    for (const h of beating) await waitFor(`a beat of ${h} heard again`, async () => (await lastBeat(h)) > back || undefined, { timeoutMs: 10_000 });
    await waitFor('nothing held any more', async () => (await held()) === 0 || undefined, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, HOST_DOWN_AFTER_MS + 500));
    expect((await downEvents()).slice(before)).toEqual([]);
    expect(await Promise.all(beating.map(state))).toEqual(['up', 'up', 'up']);
  });
});
