import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { connect } from '@nats-io/transport-node';
import { MigrationCompleted, MigrationPredictionSchema as PredictionResponse, MigrationStepCompleted } from '@flexmig/contracts';
import { predict } from '@flexmig/migration-model';
import { ensureDatabaseAndSchema } from '@flexmig/persistence';
import { RunningService, startService } from '@flexmig/service-kit';
import { freePort, ServiceProcess, startTestDatabase, startTestNats, TestDatabase, TestNats, waitFor, httpJson, readEvents, testAuthSettings, testToken } from '@flexmig/testing';
import { DbClock } from './db-clock';
import { measuredByMigration } from './prediction/measured';
import { ActionRunner } from './engine/action-runner';
import { SCHEDULER_SCHEMA, SchedulerModule } from './scheduler.module';

/**
 * The scheduler in-process on real NATS and PostgreSQL, with inventory, cpu-compat and two sim agents
 * as real processes (slow simulated time, so a migration can be caught mid-copy).
 */
describe('scheduler on real NATS and PostgreSQL', () => {
  let nats: TestNats;
  let db: TestDatabase;
  let scheduler: RunningService;
  const procs: ServiceProcess[] = [];
  const stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-int-agents-')); // the agents' ledgers, the suite's own
  let inventoryUrl: string;

  const http = httpJson;
  const sched = (method: string, path: string, body?: unknown, token?: string) => http(scheduler.url, method, path, body, { token });
  const newVm = async (name: string, memoryMiB = 8192) => {
    const r = await http(inventoryUrl, 'POST', '/api/v1/vms', { name, hostId: 'src', memoryMiB, vcpus: 1 });
    expect(r.status).toBe(201);
    return r.body;
  };
  const terminal = (id: string) =>
    waitFor(`migration ${id} to end`, async () => {
      const { body } = await sched('GET', `/api/v1/migrations/${id}`);
      return ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(body.state) ? body : undefined;
    }, { timeoutMs: 45_000 });

  beforeAll(async () => {
    nats = await startTestNats('scheduler');
    db = await startTestDatabase('scheduler');
    const common = { NATS_URL: nats.url, SUBJECT_PREFIX: nats.prefix, DATABASE_URL: db.url, LOG_LEVEL: 'warn' };
    for (const app of ['cpu-compat', 'inventory']) {
      const port = await freePort();
      if (app === 'inventory') inventoryUrl = `http://127.0.0.1:${port}`;
      procs.push(await new ServiceProcess(app, { ...common, PORT: String(port) }, port).start());
    }
    for (const [id, cpu] of [['src', 'Haswell'], ['dst', 'Haswell']]) {
      const port = await freePort();
      // 8 GiB over 1250 MiB/s takes 6.5 simulated s: at scale 1 the copy lasts long enough to cancel
      procs.push(await new ServiceProcess('agent', { ...common, PORT: String(port), HOST_ID: id, CLUSTER_NAME: 'int', SIM_CPU: cpu, SIM_TIME_SCALE: '1', AGENT_STATE_DIR: stateDir }, port, id).start());
    }
    await waitFor('hosts up', async () => (await http(inventoryUrl, 'GET', '/api/v1/hosts')).body.items?.length === 2);
    await ensureDatabaseAndSchema(db.url, SCHEDULER_SCHEMA);
    scheduler = await startService({
      name: 'scheduler',
      description: 'test',
      port: await freePort(),
      logLevel: 'warn',
      bus: { url: nats.url, prefix: nats.prefix },
      openApi: false,
      auth: testAuthSettings(),
      module: (bus) =>
        SchedulerModule.forRoot({ bus, databaseUrl: db.url, config: {
            schedulerId: 'int-1',
            leaseTtlMs: 10_000,
            reconcileIntervalMs: 200,
            limits: { maxOutboundPerHost: 2, maxInboundPerHost: 0, maxPerCluster: 5 },
            // a test asserts the prediction a migration recorded: never cut short by a loaded machine (prediction-wait.spec tests the wait)
            prediction: { assumedBandwidthMiBps: 1250, dirtyRateMaxAgeMs: 600_000, waitMs: 30_000 },
          },
        }),
    });
  });

  afterAll(async () => {
    await scheduler?.close();
    for (const p of procs.reverse()) await p.stop();
    await db?.stop();
    await nats?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('keeps its tables in its own schema, created by its checked-in migrations', async () => {
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const tables = async (schema: string) =>
        (await client.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [schema])).rows.map((r) => r.table_name);
      expect(await tables('scheduler')).toEqual(expect.arrayContaining(['cluster_settings', 'migrations', 'outbox', 'typeorm_migrations']));
      // nothing lands outside its own schema (inventory, in the same database, has its own)
      expect(await tables('public')).toEqual([]);
      expect(await tables('inventory')).not.toContain('migrations');
      const ran = await client.query('SELECT name FROM scheduler.typeorm_migrations ORDER BY id');
      expect(ran.rows.map((r) => r.name)).toEqual(expect.arrayContaining(['Init1764130000000', 'QueueAndClusterSettings1764135000000']));
    } finally {
      await client.end();
    }
  });

  it('predicts a migration on sim before it starts, from inputs with their origin and age, and the completed migration carries the prediction', async () => {
    const vm = await newVm('predict-me', 512);
    // operator, like starting one: a viewer reads predictions in GET /migrations, it does not make agents sample guests
    const asViewer = await sched('POST', '/api/v1/migrations/predict', { vmId: vm.id }, await testToken('viewer'));
    expect(asViewer.status).toBe(403);
    expect((await sched('POST', '/api/v1/migrations/predict', { vmId: vm.id, extra: 1 })).status).toBe(400);

    const before = await sched('POST', '/api/v1/migrations/predict', { vmId: vm.id });
    expect(before.status).toBe(200);
    const p = PredictionResponse.parse(before.body);
    // no target named: the one placement chooses, and why
    expect(p).toMatchObject({ sourceHostId: 'src', targetHostId: 'dst', placement: { chosen: 'dst' } });
    // no migration between src and dst has completed yet: the link comes from the source agent's probe (the sim's model link)
    expect(p.inputs.bandwidthBytesPerSec).toMatchObject({ origin: 'model', value: 1250 * 2 ** 20 });
    expect(p.inputs.dirtyRateBytesPerSec.origin).toBe('model');
    expect(p.inputs.memoryBytes).toMatchObject({ origin: 'vm', value: 512 * 2 ** 20, ageMs: null });
    for (const input of [p.inputs.dirtyRateBytesPerSec, p.inputs.workingSetBytes, p.inputs.bandwidthBytesPerSec]) {
      expect(input.ageMs).toEqual(expect.any(Number));
      expect(Date.parse(input.measuredAt!)).toBeLessThanOrEqual(Date.parse(p.predictedAt));
    }
    // the answer is the model's, on exactly these inputs and this policy
    const model = predict(
      { memoryBytes: p.inputs.memoryBytes.value, dirtyRateBytesPerSec: p.inputs.dirtyRateBytesPerSec.value, workingSetBytes: p.inputs.workingSetBytes.value, linkBandwidthBytesPerSec: p.inputs.bandwidthBytesPerSec.value },
      p.policy,
    );
    expect(p.predicted).toEqual(model.predicted);
    expect(p.levers).toEqual(model.levers);
    expect(p.predicted.converges).toBe(true);

    const m = await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' });
    expect(m.status).toBe(202);
    expect(m.body.prediction.predicted).toEqual(p.predicted);
    const done = await terminal(m.body.id);
    expect(done.state).toBe('completed');
    // beside the actual figures; the sim driver runs the same model, so the passes agree
    expect(done.result.predicted).toEqual(p.predicted);
    expect(done.result.passes).toBe(p.predicted.passes);
    const completed = await waitFor('migration.completed', async () =>
      (await readEvents<Record<string, unknown>>(nats.url, nats.prefix, 'migration.completed')).find((e) => e.data.migrationId === m.body.id),
    );
    expect(MigrationCompleted.data.parse(completed.data)).toMatchObject({ passes: done.result.passes, predicted: p.predicted });

    // what it measured of the two hosts is stored with it as it completes, as its saga gives it
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const [stored] = (await client.query('SELECT measured, saga, vm, policy FROM scheduler.migrations WHERE id = $1', [m.body.id]).finally(() => client.end())).rows;
    expect(stored.measured).toEqual(JSON.parse(JSON.stringify(measuredByMigration(stored.saga, stored.vm.memoryMiB, stored.policy.bandwidthMiBps))));
    expect(stored.measured.bytesPerSec).toBeGreaterThan(0);

    // now the link is known from that migration (either way round), with its age: the figures stored
    const after = PredictionResponse.parse((await sched('POST', '/api/v1/migrations/predict', { vmId: vm.id, targetHostId: 'src' })).body);
    expect(after.inputs.bandwidthBytesPerSec).toMatchObject({ origin: 'migrations', value: stored.measured.bytesPerSec, detail: expect.stringContaining(m.body.id) });
    expect(after.inputs.bandwidthBytesPerSec.ageMs).toEqual(expect.any(Number));
    expect(after.placement).toBeNull();
  });

  it('answers a migration started at once with its placement, as stored, though the engine does not keep placements', async () => {
    // A request that meets the reconcile tick's dispatch (every 200 ms here) holding the dispatch lock is
    // queued and starts a moment later: asked again for another VM, a few times at most, until one starts at once
    let m: { status: number; body: any } | undefined;
    for (let attempt = 0; attempt < 5 && (!m || m.body.state === 'queued'); attempt++) {
      if (m) await terminal(m.body.id);
      m = await sched('POST', '/api/v1/migrations', { vmId: (await newVm(`placed-${attempt}`, 512)).id });
      expect(m.status).toBe(202);
    }
    expect(m!.body.state).not.toBe('queued');
    expect(m!.body.placement).toMatchObject({
      chosen: 'dst',
      passedOver: [{ hostId: 'src', reason: "it is the VM's source host" }],
      passedOverCount: 1,
      passedOverByRule: { source: 1 },
    });
    const done = await terminal(m!.body.id);
    expect(done.state).toBe('completed');
    expect(done.placement).toEqual(m!.body.placement);
    // its admission held dst for this replica's other placements and released it when the row was written:
    // with that migration over, the next placement counts nothing inbound there
    const next = await sched('POST', '/api/v1/migrations', { vmId: (await newVm('placed-after', 512)).id });
    expect(next.status).toBe(202);
    expect(next.body.placement.reason).toContain('0 active inbound migration(s)');
    expect((await terminal(next.body.id)).state).toBe('completed');
  });

  it('accepts exactly one of two requests for one VM made at the same instant', async () => {
    const vm = await newVm('twice', 512);
    const [a, b] = await Promise.all([
      sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' }),
      sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([202, 409]);
    const accepted = a.status === 202 ? a.body : b.body;
    const refused = a.status === 409 ? a.body : b.body;
    expect(refused.code).toBe('MIGRATION_ACTIVE');
    expect((await sched('GET', `/api/v1/migrations?vmId=${vm.id}`)).body.items.map((m: any) => m.id)).toEqual([accepted.id]);
    expect((await terminal(accepted.id)).state).toBe('completed');
    expect((await http(inventoryUrl, 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('dst');
  });

  it('cancels during the memory copy: the copy stops, completed steps are undone, the VM stays on the source', async () => {
    const vm = await newVm('cancel-me');
    // what the VMs moved by the earlier tests hold on the target: the cancelled migration's reservation must not stay
    const dstMemoryBefore = (await http(inventoryUrl, 'GET', '/api/v1/hosts/dst')).body.allocatedMemoryMiB;
    const m = (await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' })).body;
    // the copy's latest progress sample, as the source agent publishes it (at least once a second), is in the migration's view
    const copying = await waitFor('the memory copy to run and show its progress', async () => {
      const { body } = await sched('GET', `/api/v1/migrations/${m.id}`);
      return body.currentStep?.number === 3 && body.progress ? body : undefined;
    });
    expect(copying.progress).toMatchObject({ migrationId: m.id, vmId: vm.id, hostId: 'src', step: 3 });
    const cancel = await sched('POST', `/api/v1/migrations/${m.id}/cancel`, { reason: 'operator changed their mind' });
    expect(cancel.status).toBe(202);
    const done = await terminal(m.id);
    expect(done.state).toBe('cancelled');
    expect(done.progress).toBeNull();
    expect(done.steps.find((s: any) => s.number === 2).status).toBe('compensated');
    expect(done.steps.find((s: any) => s.number === 1).status).toBe('compensated');
    expect(done.steps.slice(4).every((s: any) => s.status === 'skipped' || s.status === 'pending')).toBe(true);
    expect((await http(inventoryUrl, 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('src');
    expect((await http(inventoryUrl, 'GET', '/api/v1/hosts/dst')).body.allocatedMemoryMiB).toBe(dstMemoryBefore);
    // cancelling again is refused with the reason
    const again = await sched('POST', `/api/v1/migrations/${m.id}/cancel`, {});
    expect([again.status, again.body.code]).toEqual([409, 'CONFLICT']);
  });

  it('queues requests beyond a limit (visible, with position), starts them as slots free, and never exceeds the limit', async () => {
    const clusterId = (await http(inventoryUrl, 'GET', '/api/v1/hosts/src')).body.clusterId;
    const bad = await sched('PUT', `/api/v1/clusters/${clusterId}/migration-settings`, { limits: { maxOutboundPerHost: -1 } });
    expect([bad.status, bad.body.code]).toEqual([400, 'VALIDATION_FAILED']);
    const put = await sched('PUT', `/api/v1/clusters/${clusterId}/migration-settings`, { limits: { maxOutboundPerHost: 1 }, policy: { downtimeLimitMs: 500 } });
    expect(put.status).toBe(200);
    expect(put.body.limits).toEqual({ maxOutboundPerHost: 1, maxInboundPerHost: 0, maxPerCluster: 5 });
    try {
      const vms = [await newVm('q1', 2048), await newVm('q2', 2048), await newVm('q3', 2048), await newVm('q4', 2048)];
      const ms: { id: string; state: string; queuePosition: number | null; policy: { downtimeLimitMs: number } }[] = [];
      for (const vm of vms) ms.push((await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' })).body);
      expect(ms.map((m) => m.state)).toEqual(['running', 'queued', 'queued', 'queued']);
      expect(ms.slice(1).map((m) => m.queuePosition)).toEqual([1, 2, 3]);
      // read again, one and a page: the queue as it is by then (the first may have ended and the next started)
      const newest = (await sched('GET', `/api/v1/migrations/${ms[3].id}`)).body;
      expect([newest.state, newest.queuePosition]).toEqual(['queued', expect.any(Number)]);
      expect(newest.queuePosition).toBeGreaterThanOrEqual(1);
      expect(newest.queuePosition).toBeLessThanOrEqual(3);
      const page = (await sched('GET', '/api/v1/migrations?state=queued')).body.items as { id: string; queuePosition: number; createdAt: string }[];
      const ours = page.filter((m) => ms.some((x) => x.id === m.id)).reverse(); // the page is newest first
      expect(ours.length).toBeGreaterThanOrEqual(1);
      expect(ours.at(-1)!.id).toBe(ms[3].id);
      expect(ours.map((m) => m.queuePosition)).toEqual(ours.map((_, i) => i + 1));
      expect(ms[0].policy.downtimeLimitMs).toBe(500); // the cluster's policy
      // a queued migration cancels at once: it has nothing to undo
      const cancelled = await sched('POST', `/api/v1/migrations/${ms[3].id}/cancel`, {});
      expect(cancelled.status).toBe(202);
      expect(cancelled.body.state).toBe('cancelled');
      const done = [];
      for (const m of ms.slice(0, 3)) done.push(await terminal(m.id));
      expect(done.map((m) => m.state)).toEqual(['completed', 'completed', 'completed']);
      // from the recorded step times: one outbound migration at a time from src
      const spans = done.map((m) => [Date.parse(m.steps[0].startedAt), Date.parse(m.steps[8].endedAt)]).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
    } finally {
      await sched('PUT', `/api/v1/clusters/${clusterId}/migration-settings`, {});
    }
  });

  it('records who asked and who cancelled from the bearer token, never from the body (API and events)', async () => {
    const alice = await testToken('operator', 'alice');
    const carol = await testToken('operator', 'carol');
    const vm = await newVm('audited');
    // a body cannot name the requester: the field does not exist, and an unknown field is refused
    const claimed = await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst', requestedBy: 'mallory' }, alice);
    expect([claimed.status, claimed.body.code]).toEqual([400, 'VALIDATION_FAILED']);
    const m = await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' }, alice);
    expect(m.status).toBe(202);
    expect(m.body.requestedBy).toBe('alice');
    expect((await sched('GET', `/api/v1/migrations/${m.body.id}`, undefined, carol)).body.requestedBy).toBe('alice');
    const requested = await waitFor('migration.requested', async () =>
      (await readEvents<{ migrationId: string; requestedBy: string }>(nats.url, nats.prefix, 'migration.requested')).find((e) => e.data.migrationId === m.body.id),
    );
    expect(requested.data.requestedBy).toBe('alice');

    await waitFor('the memory copy to run', async () => (await sched('GET', `/api/v1/migrations/${m.body.id}`)).body.currentStep?.number === 3);
    const claimedCancel = await sched('POST', `/api/v1/migrations/${m.body.id}/cancel`, { reason: 'r', by: 'mallory' }, carol);
    expect(claimedCancel.status).toBe(400);
    expect((await sched('POST', `/api/v1/migrations/${m.body.id}/cancel`, { reason: 'not today' }, carol)).status).toBe(202);
    expect((await terminal(m.body.id)).state).toBe('cancelled');
    const cancelled = await waitFor('migration.cancelled', async () =>
      (await readEvents<{ migrationId: string; by: string; reason: string }>(nats.url, nats.prefix, 'migration.cancelled')).find((e) => e.data.migrationId === m.body.id),
    );
    expect(cancelled.data).toMatchObject({ by: 'carol', reason: 'not today' });
  });

  it('completes a migration whose first dispatch of every step is dropped on the floor: the reconcile pass re-issues each', async () => {
    // The runner's fast path (run straight after the commit, timers as hints) loses the first command of each
    // of the nine steps. Nothing else would send them before their deadlines (30 s and more with the saga's
    // defaults, and a query then a second attempt after that): only the pass, which finds each row due in
    // PostgreSQL and not in progress, re-issues the same attempt.
    const runner = scheduler.app.get(ActionRunner);
    const run = runner.run;
    const vm = await newVm('dropped', 512);
    const dropped: string[] = [];
    runner.run = (row, actions) => {
      const kept = actions.filter((a) => {
        if (row.vmId !== vm.id || a.kind !== 'run-step' || dropped.includes(a.name)) return true;
        dropped.push(a.name);
        return false;
      });
      run.call(runner, row, kept);
    };
    try {
      const m = await sched('POST', '/api/v1/migrations', { vmId: vm.id, targetHostId: 'dst' });
      expect(m.status).toBe(202);
      const done = await terminal(m.body.id);
      expect(done.state).toBe('completed');
      expect(dropped).toEqual(done.steps.map((st: any) => st.name));
      // re-issued, not timed out and retried: every step completed at its first attempt
      expect(done.steps.map((st: any) => [st.name, st.status, st.attempt])).toEqual(done.steps.map((st: any) => [st.name, 'completed', 1]));
      expect((await http(inventoryUrl, 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('dst');
    } finally {
      runner.run = run;
    }
  });

  it('answers unknown and malformed migration ids with 404 and 400', async () => {
    expect((await sched('GET', '/api/v1/migrations/00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await sched('GET', '/api/v1/migrations/not-a-uuid')).status).toBe(400);
    expect((await sched('POST', '/api/v1/migrations', { vmId: '00000000-0000-4000-8000-000000000000', targetHostId: 'dst', policy: { downtimeLimitMs: 0 } })).status).toBe(400);
  });

  it('given a list query with a parameter the list does not have (a misspelt filter), then 400 naming it, not every item', async () => {
    for (const [url, path] of [
      [scheduler.url, '/api/v1/migrations?vmid=00000000-0000-4000-8000-000000000000'],
      [inventoryUrl, '/api/v1/vms?hostid=src'],
      [inventoryUrl, '/api/v1/hosts?clusterid=00000000-0000-4000-8000-000000000000'],
    ]) {
      const r = await http(url, 'GET', path);
      expect({ path, status: r.status, code: r.body.code }).toEqual({ path, status: 400, code: 'VALIDATION_FAILED' });
      expect(r.body.message).toMatch(/query is invalid: .*(vmid|hostid|clusterid)/i);
    }
  });

  it('moves an event that breaks its contract to the dead-letter table, and publishes the others', async () => {
    const nc = await connect({ servers: nats.url });
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const published: string[] = [];
      const sub = nc.subscribe(`${nats.prefix}.events.migration.step-completed`, { callback: (_e, m) => void published.push(m.json<{ id: string }>().id) });
      await nc.flush();
      const ref = { migrationId: randomUUID(), vmId: randomUUID() };
      const good = { ...ref, step: 1, stepName: 'verify-compatibility', attempt: 1, durationMs: 3 };
      const bad = { ...ref, step: 2, stepName: 'transfer-config', attempt: 1, durationMs: -5 }; // what a skewed clock once made
      expect(MigrationStepCompleted.data.safeParse(good).success).toBe(true);
      expect(MigrationStepCompleted.data.safeParse(bad).success).toBe(false);
      // committed in this order: the bad one first, so that it would block the good one behind it
      for (const [id, data] of [[`${ref.migrationId}:step-completed:2`, bad], [`${ref.migrationId}:step-completed:1`, good]] as const) {
        await client.query(`INSERT INTO scheduler.outbox (event_id, type, subject, data, created_at) VALUES ($1, 'migration.step-completed', $2, $3, now())`, [id, ref.migrationId, JSON.stringify(data)]);
      }
      await waitFor('the good event on NATS', async () => published.includes(`${ref.migrationId}:step-completed:1`) || undefined, { timeoutMs: 10_000 });
      // the relay publishes, then commits the batch's deletes and dead letters: wait for its commit
      await waitFor('the relay to commit its batch', async () =>
        (await client.query('SELECT count(*)::int AS n FROM scheduler.outbox WHERE subject = $1', [ref.migrationId])).rows[0].n === 0 || undefined,
        { timeoutMs: 10_000 },
      );
      const dead = await client.query('SELECT event_id, error FROM scheduler.outbox_dead_letter WHERE subject = $1', [ref.migrationId]);
      expect(dead.rows).toEqual([{ event_id: `${ref.migrationId}:step-completed:2`, error: expect.stringContaining('durationMs') }]);
      expect(published).not.toContain(`${ref.migrationId}:step-completed:2`);
      const metrics = await (await fetch(`${scheduler.url}/metrics`)).text();
      expect(metrics).toMatch(/flexmig_events_dead_lettered_total\{type="migration.step-completed"\} [1-9]/);
      // the level an alert watches: the rows held, whatever restarts happened; down again once they are dealt with
      const held = async () => Number((await (await fetch(`${scheduler.url}/metrics`)).text()).match(/^flexmig_outbox_events_dead_lettered (\d+)$/m)?.[1]);
      const rowsHeld = async () => (await client.query('SELECT count(*)::int AS n FROM scheduler.outbox_dead_letter')).rows[0].n as number;
      const before = await rowsHeld();
      expect(before).toBeGreaterThanOrEqual(1);
      await waitFor('the gauge to count the rows held', async () => (await held()) === before || undefined, { timeoutMs: 10_000 });
      await client.query('DELETE FROM scheduler.outbox_dead_letter WHERE subject = $1', [ref.migrationId]);
      await waitFor('the gauge to drop once the row is dealt with', async () => (await held()) === before - 1 || undefined, { timeoutMs: 10_000 });
      sub.unsubscribe();
    } finally {
      await client.end();
      await nc.close();
    }
  });

  it('keeps PostgreSQL’s clock: its now() is within a round trip of the database’s, and never goes back', async () => {
    const clock = scheduler.app.get(DbClock);
    const client = new Client({ connectionString: db.url });
    await client.connect();
    try {
      const before = clock.now();
      const { rows } = await client.query('SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS t');
      const after = clock.now();
      expect(Number(rows[0].t)).toBeGreaterThan(before - 250);
      expect(Number(rows[0].t)).toBeLessThan(after + 250);
      let last = 0;
      for (let i = 0; i < 50; i++) {
        if (i % 10 === 0) await clock.sync();
        const t = clock.now();
        expect(t).toBeGreaterThanOrEqual(last);
        last = t;
      }
    } finally {
      await client.end();
    }
  });
});
