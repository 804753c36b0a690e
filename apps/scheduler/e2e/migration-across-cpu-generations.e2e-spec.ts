import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { MigrationPolicySchema, stepName } from '@flexmig/contracts';
import { freePort, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor, httpJson } from '@flexmig/testing';

/**
 * The whole system as built (`node dist/apps/<app>/main.js`), on real NATS and PostgreSQL: three sim
 * agents of different CPU generations, a VM live-migrated across generations, a migration refused at
 * step 1, the events on JetStream, and bad requests answered with 4xx and nothing written.
 */
describe('live migration across CPU generations (real processes)', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let nc: NatsConnection;
  const procs: ServiceProcess[] = [];
  const url: Record<string, string> = {};
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-e2e-agents-'));
  const hosts = [
    { id: 'host-a', cpu: 'Westmere' },
    { id: 'host-b', cpu: 'SandyBridge' },
    { id: 'host-c', cpu: 'IvyBridge' },
  ];

  const http = (service: string, method: string, path: string, body?: unknown) => httpJson(url[service], method, path, body);

  const terminal = (id: string) =>
    waitFor(`migration ${id} to end`, async () => {
      const { body } = await http('scheduler', 'GET', `/api/v1/migrations/${id}`);
      return ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(body.state) ? body : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });

  beforeAll(async () => {
    nats = await startTestNats('e2e', { auth: true }); // every process with its own identity, as `npm start` runs
    db = await startTestDatabase('e2e');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    for (const app of ['cpu-compat', 'inventory', 'scheduler'] as const) {
      const port = await freePort();
      url[app] = `http://127.0.0.1:${port}`;
      procs.push(await new ServiceProcess(app, { ...common, ...nats.serviceEnv(app), PORT: String(port) }, port).start());
    }
    for (const h of hosts) {
      const port = await freePort();
      procs.push(
        await new ServiceProcess(
          'agent',
          { ...common, ...(await nats.agentEnv(h.id)), PORT: String(port), HOST_ID: h.id, CLUSTER_NAME: 'e2e', SIM_CPU: h.cpu, AGENT_STATE_DIR: stateDir, SIM_TIME_SCALE: '0.05', HEARTBEAT_INTERVAL_MS: '500' },
          port,
          h.id,
        ).start(),
      );
    }
    await waitFor('three hosts up', async () => {
      const { body } = await http('inventory', 'GET', '/api/v1/hosts');
      return body.items?.filter((h: any) => h.state === 'up').length === 3;
    });
    nc = await connect({ servers: nats.url, ...nats.observer() });
  }, 120_000);

  afterAll(async () => {
    await nc?.close();
    for (const p of procs.reverse()) await p.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const readEvents = async (subjectFilter: string) => {
    const jsm = await jetstreamManager(nc);
    const stream = `${nats.prefix.toUpperCase()}_EVENTS`;
    // a consumer created after the fact reads the history: events are durable and replayable
    const name = `reader_${Math.random().toString(36).slice(2)}`;
    await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: subjectFilter });
    const consumer = await jetstream(nc).consumers.get(stream, name);
    const out: any[] = [];
    const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
    for await (const m of batch) out.push(m.json());
    return out;
  };

  it('hosts report their highest CPU mode', async () => {
    const { body } = await http('inventory', 'GET', '/api/v1/hosts');
    expect(Object.fromEntries(body.items.map((h: any) => [h.id, h.maxImcMode]))).toEqual({ 'host-a': 'Westmere', 'host-b': 'SandyBridge', 'host-c': 'IvyBridge' });
  });

  let vm: any;
  it('migrates a VM from the newest to the oldest host through the nine steps', async () => {
    const created = await http('inventory', 'POST', '/api/v1/vms', { name: 'e2e-vm', hostId: 'host-c', memoryMiB: 2048, vcpus: 2 });
    expect(created.status).toBe(201);
    vm = created.body;
    expect(vm).toMatchObject({ hostId: 'host-c', state: 'running', cpuBaseline: 'Westmere' });

    const accepted = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'host-a' });
    expect(accepted.status).toBe(202);
    const m = await terminal(accepted.body.id);
    expect(m.state).toBe('completed');
    expect(m.steps.map((s: any) => [s.number, s.name, s.status])).toEqual([
      [1, 'verify-compatibility', 'completed'],
      [2, 'transfer-config', 'completed'],
      [3, 'transfer-memory', 'completed'],
      [4, 'sync-memory', 'completed'],
      [5, 'pause-source', 'completed'],
      [6, 'transfer-state', 'completed'],
      [7, 'resume-target', 'completed'],
      [8, 'stop-source', 'completed'],
      [9, 'commit', 'completed'],
    ]);
    for (let i = 1; i < m.steps.length; i++) expect(Date.parse(m.steps[i].startedAt)).toBeGreaterThanOrEqual(Date.parse(m.steps[i - 1].endedAt));
    expect(m.result.bytesTransferred).toBeGreaterThanOrEqual(2048 * 1024 * 1024);
    expect(m.result.passes).toBeGreaterThanOrEqual(1);
    expect(m.result.downtimeMs).toBeGreaterThan(0);
    expect(m.result.downtimeMs).toBeLessThan(m.result.totalTimeMs);

    const after = await http('inventory', 'GET', `/api/v1/vms/${vm.id}`);
    expect(after.body.hostId).toBe('host-a');
    const migrations = await http('scheduler', 'GET', `/api/v1/migrations?vmId=${vm.id}`);
    expect(migrations.body.items).toHaveLength(1);

    const events = await readEvents(`${nats.prefix}.events.migration.>`);
    const mine = events.filter((e) => e.subject === m.id);
    expect(mine.map((e) => e.type)).toEqual([
      'migration.requested',
      ...Array(9).fill('migration.step-completed'),
      'migration.completed',
    ]);
    const completed = mine[mine.length - 1];
    expect(completed).toMatchObject({ specversion: '1.0', id: `${m.id}:completed`, source: '/flexmig/scheduler' });
    expect(completed.data).toMatchObject({ migrationId: m.id, vmId: vm.id, sourceHostId: 'host-c', targetHostId: 'host-a', ...m.result });
  });

  it('exposes what happened on /metrics', async () => {
    const text = async (service: string) => (await fetch(`${url[service]}/metrics`)).text();
    await waitFor('the scheduler to count its migrations', async () => (await text('scheduler')).includes('flexmig_migrations{state="running"}'));
    const scheduler = await text('scheduler');
    expect(scheduler).toMatch(/flexmig_migrations_finished_total\{outcome="completed"\} 1\b/);
    expect(scheduler).toMatch(/flexmig_migration_downtime_seconds_count 1\b/);
    expect(scheduler).toMatch(/flexmig_migration_step_duration_seconds_count\{step="sync-memory"\} 1\b/);
    expect(scheduler).toMatch(/flexmig_outbox_events_waiting \d+/);
    expect(await text('inventory')).toMatch(/flexmig_hosts\{state="up",maintenance="false"\} 3\b/);
    const agent = await (await fetch(`http://127.0.0.1:${procs.find((p) => p.label === 'host-c')!.port}/metrics`)).text();
    expect(agent).toMatch(/flexmig_agent_steps_total\{step="transfer-memory",role="source",outcome="ok"\} 1\b/);
    // its entry step (3) took inventory's notice of step 1's reservation, sent before the scheduler heard back, and asked nothing
    expect(agent).toMatch(/flexmig_agent_entry_reservations_total\{from="noticed"\} 1\b/);
  });

  it('refuses at step 1 a target whose CPU lacks the VM baseline, naming the missing features', async () => {
    const created = await http('inventory', 'POST', '/api/v1/vms', { name: 'ivy-vm', hostId: 'host-c', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' });
    expect(created.status).toBe(201);
    const accepted = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: created.body.id, targetHostId: 'host-a' });
    expect(accepted.status).toBe(202);
    const m = await terminal(accepted.body.id);
    expect(m.state).toBe('rolled-back');
    expect(m.failure).toMatchObject({ step: 1, code: 'CPU_INCOMPATIBLE' });
    for (const f of ['avx', 'xsave', 'f16c', 'rdrand']) expect(m.failure.message).toContain(f);
    expect(m.steps.slice(1).every((s: any) => s.status === 'skipped' || s.status === 'pending')).toBe(true);
    expect((await http('inventory', 'GET', `/api/v1/vms/${created.body.id}`)).body.hostId).toBe('host-c');
    const events = (await readEvents(`${nats.prefix}.events.migration.>`)).filter((e) => e.subject === m.id).map((e) => e.type);
    expect(events).toEqual(['migration.requested', 'migration.failed', 'migration.rolled-back']);
    // the capacity held for it on the target was released
    const target = await http('inventory', 'GET', '/api/v1/hosts/host-a');
    expect(target.body.allocatedMemoryMiB).toBe(2048); // e2e-vm only
  });

  /**
   * A client that may publish on the agents' and inventory's subjects (what NATS permissions alone allow)
   * still cannot make an agent destroy, expose or fence anything, nor move a VM's record: each request is
   * tied to what its receiver knows of the migration (docs/security.md, "Agents and inventory").
   */
  describe('forged requests from a client allowed to publish are refused', () => {
    const ask = async (subject: string, payload: unknown) => {
      const reply = await nc.request(`${nats.prefix}.${subject}`, new TextEncoder().encode(JSON.stringify(payload)), { timeout: 5000 });
      return JSON.parse(new TextDecoder().decode(reply.data));
    };
    const agentVms = async (hostId: string) => (await ask(`agent.${hostId}.vm.list`, {})).data.vms;
    const forgedStep = (step: number, role: 'source' | 'target', extra: Record<string, unknown> = {}) => ({
      migrationId: randomUUID(),
      step,
      stepName: stepName(step),
      attempt: 1,
      role,
      vm: { id: vm.id, name: vm.name, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, cpuBaseline: vm.cpuBaseline },
      sourceHostId: 'host-a',
      targetHostId: 'host-c',
      policy: MigrationPolicySchema.parse({}),
      ...extra,
    });

    it('stop-source for a made-up migration naming a running VM: NOT_A_PARTICIPANT, the VM keeps running', async () => {
      const reply = await ask('agent.host-a.migration.step', forgedStep(8, 'source'));
      expect(reply).toMatchObject({ ok: false, error: { code: 'NOT_A_PARTICIPANT' } });
      expect(reply.error.message).toMatch(/needs pause-source done on this source agent first/);
      expect(await agentVms('host-a')).toContainEqual(expect.objectContaining({ vmId: vm.id, state: 'running' }));
      const undo = await ask('agent.host-a.migration.compensate', { migrationId: randomUUID(), step: 2, stepName: 'transfer-config', compensation: 'destroy-incoming-vm', role: 'target', vmId: vm.id });
      expect(undo).toMatchObject({ ok: false, error: { code: 'NOT_A_PARTICIPANT' } });
      expect(await agentVms('host-a')).toContainEqual(expect.objectContaining({ vmId: vm.id, state: 'running' }));
    });

    it("transfer-memory to an address of the attacker's choosing: refused without a reservation, and to another host even with one", async () => {
      const noReservation = await ask('agent.host-a.migration.step', forgedStep(3, 'source', { incomingAddress: '203.0.113.9:4444' }));
      expect(noReservation).toMatchObject({ ok: false, error: { code: 'NOT_A_PARTICIPANT', message: expect.stringMatching(/no reservation/) } });
      // a migration the scheduler really started (its step 1 reservation), then a forged step 3 for it
      const cmd = forgedStep(3, 'source', { incomingAddress: '203.0.113.9:4444' });
      expect(await ask('inventory.reservation.create', { migrationId: cmd.migrationId, vmId: vm.id, hostId: 'host-c' })).toMatchObject({ ok: true });
      try {
        const reply = await ask('agent.host-a.migration.step', cmd);
        expect(reply).toMatchObject({ ok: false, error: { code: 'UNTRUSTED_ADDRESS' } });
        expect(reply.error.message).toMatch(/203\.0\.113\.9:4444 is not on host host-c/);
        expect(await agentVms('host-a')).toContainEqual(expect.objectContaining({ vmId: vm.id, state: 'running' }));
        // nothing was recorded for the forged command: the agent knows nothing of that migration
        expect((await ask('agent.host-a.migration.query', { migrationId: cmd.migrationId })).data.steps).toEqual([]);
      } finally {
        await ask('inventory.reservation.release', { migrationId: cmd.migrationId });
      }
    });

    it('a query for attempt 99 fences nothing: ATTEMPT_NOT_ISSUED, for a real migration and a made-up one', async () => {
      const [done] = (await http('scheduler', 'GET', `/api/v1/migrations?vmId=${vm.id}`)).body.items;
      const real = await ask('agent.host-a.migration.query', { migrationId: done.id, step: 5, attempt: 99 });
      expect(real).toMatchObject({ ok: false, error: { code: 'ATTEMPT_NOT_ISSUED', message: expect.stringMatching(/scheduler's latest is 1/) } });
      const madeUp = await ask('agent.host-c.migration.query', { migrationId: randomUUID(), step: 2, attempt: 99 });
      expect(madeUp).toMatchObject({ ok: false, error: { code: 'ATTEMPT_NOT_ISSUED' } });
    });

    it("inventory moves no VM record without the migration's reservation, and reserves only for a VM that can move there", async () => {
      const relocate = await ask('inventory.vm.relocate', { migrationId: randomUUID(), vmId: vm.id, fromHostId: 'host-a', toHostId: 'host-c' });
      expect(relocate).toMatchObject({ ok: false, error: { code: 'RESERVATION_MISMATCH' } });
      expect((await http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('host-a');
      const self = await ask('inventory.reservation.create', { migrationId: randomUUID(), vmId: vm.id, hostId: 'host-a' });
      expect(self).toMatchObject({ ok: false, error: { code: 'UNABLE_TO_MIGRATE_TO_SELF' } });
      // step 1 is this one request: inventory asks cpu-compat itself, and holds nothing on a host whose CPU cannot run the VM
      const ivy = await http('inventory', 'POST', '/api/v1/vms', { name: 'ivy-only', hostId: 'host-c', memoryMiB: 256, vcpus: 1, cpuBaseline: 'IvyBridge' });
      expect(ivy.status).toBe(201);
      const heldBefore = (await http('inventory', 'GET', '/api/v1/hosts/host-a')).body.allocatedMemoryMiB;
      const westmere = await ask('inventory.reservation.create', { migrationId: randomUUID(), vmId: ivy.body.id, hostId: 'host-a' });
      expect(westmere).toMatchObject({ ok: false, error: { code: 'CPU_INCOMPATIBLE', details: { hostId: 'host-a', baseline: 'IvyBridge', missing: expect.arrayContaining(['avx', 'xsave']) } } });
      expect(westmere.error.message).toMatch(/target host host-a cannot run VM ivy-only with CPU baseline IvyBridge/);
      expect((await http('inventory', 'GET', '/api/v1/hosts/host-a')).body.allocatedMemoryMiB).toBe(heldBefore);
      const first = randomUUID();
      expect(await ask('inventory.reservation.create', { migrationId: first, vmId: vm.id, hostId: 'host-c' })).toMatchObject({ ok: true });
      try {
        const second = await ask('inventory.reservation.create', { migrationId: randomUUID(), vmId: vm.id, hostId: 'host-c' });
        expect(second).toMatchObject({ ok: false, error: { code: 'MIGRATION_ACTIVE' } });
        // a relocation naming that reservation's migration but another host
        const elsewhere = await ask('inventory.vm.relocate', { migrationId: first, vmId: vm.id, fromHostId: 'host-a', toHostId: 'host-b' });
        expect(elsewhere).toMatchObject({ ok: false, error: { code: 'RESERVATION_MISMATCH' } });
        expect((await http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('host-a');
      } finally {
        await ask('inventory.reservation.release', { migrationId: first });
      }
    });
  });

  describe('bad requests get a 4xx with a clear message and write nothing', () => {
    const count = async () => (await http('scheduler', 'GET', '/api/v1/migrations')).body.items.length;

    it.each([
      ['a missing field', { targetHostId: 'host-b' }, 400, 'VALIDATION_FAILED', 'vmId'],
      ['a mistyped field', { vmId: 42, targetHostId: 'host-b' }, 400, 'VALIDATION_FAILED', 'vmId'],
      ['an unknown field', { vmId: '00000000-0000-4000-8000-000000000000', targetHostId: 'host-b', speed: 'fast' }, 400, 'VALIDATION_FAILED', 'speed'],
      ['an unknown VM', { vmId: '00000000-0000-4000-8000-000000000000', targetHostId: 'host-b' }, 404, 'NOT_FOUND', 'VM'],
    ])('%s', async (_, body, status, code, mentions) => {
      const before = await count();
      const res = await http('scheduler', 'POST', '/api/v1/migrations', body);
      expect(res.status).toBe(status);
      expect(res.body.code).toBe(code);
      expect(res.body.message).toContain(mentions);
      expect(await count()).toBe(before);
    });

    it('an unknown host, the source as target, and a malformed body', async () => {
      const before = await count();
      const unknown = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'host-z' });
      expect([unknown.status, unknown.body.code]).toEqual([404, 'NOT_FOUND']);
      const self = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'host-a' });
      expect([self.status, self.body.code]).toEqual([422, 'UNABLE_TO_MIGRATE_TO_SELF']);
      const malformed = await http('scheduler', 'POST', '/api/v1/migrations', '{"vmId": ');
      expect([malformed.status, malformed.body.code]).toEqual([400, 'VALIDATION_FAILED']);
      expect(await count()).toBe(before);
    });

    it('a target host that is down', async () => {
      const agentB = procs.find((p) => p.label === 'host-b')!;
      await agentB.kill();
      await waitFor('host-b to be marked down', async () => (await http('inventory', 'GET', '/api/v1/hosts/host-b')).body.state === 'down', { timeoutMs: 20_000 });
      // host.down is published after the sweep's commit, a moment after the state reads down
      await waitFor('host.down of host-b', async () => (await readEvents(`${nats.prefix}.events.host.down`)).some((e) => e.data.hostId === 'host-b') || undefined, { timeoutMs: 10_000 });
      const before = await count();
      const res = await http('scheduler', 'POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'host-b' });
      expect([res.status, res.body.code]).toEqual([409, 'HOST_DOWN']);
      expect(res.body.message).toContain('host-b');
      expect(await count()).toBe(before);
    });

    it('a malformed NATS message gets an error reply, and the services keep serving', async () => {
      const reply = await nc.request(`${nats.prefix}.inventory.vm.get`, new TextEncoder().encode('{"vmId":"nope"}'), { timeout: 2000 });
      expect(JSON.parse(new TextDecoder().decode(reply.data))).toMatchObject({ ok: false, error: { code: 'VALIDATION_FAILED' } });
      const garbage = await nc.request(`${nats.prefix}.agent.host-c.migration.step`, new TextEncoder().encode('garbage'), { timeout: 2000 });
      expect(JSON.parse(new TextDecoder().decode(garbage.data))).toMatchObject({ ok: false, error: { code: 'MALFORMED_MESSAGE' } });
      expect((await http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).status).toBe(200);
    });
  });
});
