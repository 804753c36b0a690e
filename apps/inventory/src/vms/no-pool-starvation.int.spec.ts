import { connect, type NatsConnection } from '@nats-io/transport-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from '@flexmig/timing';
import { freePort, httpJson, readEvents, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor } from '@flexmig/testing';

// No pool starvation (issue 10, item 5): inventory holds no database connection across a NATS request.
// cpu-compat answers slowly (a relay in the test delays every cpu.* request), inventory has a pool of 2,
// and a burst of VM creations (more than the pool) must leave heartbeats written: no healthy host goes down.

const POOL_SIZE = 2;
const CPU_DELAY_MS = 2_000;
const BURST = 8;
const HOST_DOWN_AFTER_MS = 3_000;

describe('a burst of VM creations with a slow cpu-compat', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let relay: NatsConnection;
  let inv: string;
  const services: ServiceProcess[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-starve-'));

  beforeAll(async () => {
    nats = await startTestNats('starve');
    db = await startTestDatabase('starve');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, LOG_LEVEL: 'warn' };
    // the real cpu-compat answers under a prefix of its own; the relay answers inventory's cpu.* requests
    // with cpu-compat's replies, each CPU_DELAY_MS late
    const cpuPrefix = `${nats.prefix}_slowcpu`;
    relay = await connect({ servers: nats.url, name: 'slow-cpu-compat' });
    relay.subscribe(`${nats.prefix}.cpu.>`, {
      callback: (err, m) => {
        if (err) return;
        void (async () => {
          await sleep(CPU_DELAY_MS);
          const answer = await relay.request(`${cpuPrefix}${m.subject.slice(nats.prefix.length)}`, m.data, { timeout: 10_000, ...(m.headers ? { headers: m.headers } : {}) });
          m.respond(answer.data, answer.headers ? { headers: answer.headers } : undefined);
        })().catch(() => undefined);
      },
    });
    const [cpuPort, invPort, agentPort] = [await freePort(), await freePort(), await freePort()];
    inv = `http://127.0.0.1:${invPort}`;
    const cpu = new ServiceProcess('cpu-compat', { ...common, SUBJECT_PREFIX: cpuPrefix, PORT: String(cpuPort) }, cpuPort);
    const inventory = new ServiceProcess(
      'inventory',
      {
        ...common,
        DATABASE_URL: db.url,
        PORT: String(invPort),
        DATABASE_POOL_SIZE: String(POOL_SIZE),
        HOST_DOWN_AFTER_MS: String(HOST_DOWN_AFTER_MS),
        HOST_CHECK_INTERVAL_MS: '250',
        RECONCILE_INTERVAL_MS: '1000',
      },
      invPort,
    );
    services.push(cpu, inventory);
    // one after the other: on a loaded machine, starting together can push one past its readiness wait
    await cpu.start();
    await inventory.start();
    const agent = new ServiceProcess('agent', { ...common, HOST_ID: 'st-a', PORT: String(agentPort), AGENT_STATE_DIR: dir, SIM_TIME_SCALE: '0', HEARTBEAT_INTERVAL_MS: '500' }, agentPort, 'agent st-a');
    services.push(agent);
    await agent.start();
    await waitFor('host st-a to register', async () => (await httpJson(inv, 'GET', '/api/v1/hosts/st-a')).status === 200, { timeoutMs: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await relay?.close();
    await db?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it(`creates ${BURST} VMs at once on a pool of ${POOL_SIZE} while heartbeats keep the host up`, async () => {
    const created = await Promise.all(
      Array.from({ length: BURST }, (_, i) => httpJson(inv, 'POST', '/api/v1/vms', { name: `burst-${i}`, hostId: 'st-a', memoryMiB: 256, vcpus: 1 })),
    );
    // a sweep after the burst would see a heartbeat that was never written
    await sleep(HOST_DOWN_AFTER_MS);
    const down = await readEvents<{ hostId: string }>(nats.url, nats.prefix, 'host.down');
    const host = await httpJson(inv, 'GET', '/api/v1/hosts/st-a');
    // one assertion, so that a failure shows both what the burst got and whether the host went down
    expect({ created: created.map((r) => [r.status, r.body?.code ?? null]), hostsMarkedDown: down.map((e) => e.data.hostId), state: host.body.state }).toEqual({
      created: created.map(() => [201, null]),
      hostsMarkedDown: [],
      state: 'up',
    });
  }, 90_000);
});
