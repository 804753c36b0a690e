import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { httpJson, StopWaiting, waitFor } from './infra';
import { freePort, ServiceProcess } from './processes';
import { NatsServerProcess, PostgresServerProcess } from './servers';
import { sleep } from '@flexmig/timing';

/** A CloudEvent read back from JetStream, as JSON: any type of event, so the tests assert on its shape. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export type EventJson = { id: string; type: string; subject: string; data: any; [attribute: string]: any };

export const TERMINAL = ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'];

export interface HarnessOptions {
  /** The sim hosts; `env`: that agent's own settings (SIM_VCPUS…), over `agent`. */
  hosts: { id: string; cpu: string; env?: Record<string, string> }[];
  scheduler?: Record<string, string>;
  agent?: Record<string, string>;
  inventory?: Record<string, string>;
}

/**
 * flexmig as built, on a NATS server and a PostgreSQL server of the suite's own (so they can be
 * restarted), with helpers to break things and to check that a migration ended cleanly: the VM runs on
 * exactly one host, inventory agrees, the migration is terminal, and its events are on JetStream.
 * NATS runs as `npm start` runs it: operator mode with the configuration `flexmig auth init` writes, every
 * service and agent with its own identity; the harness looks around with a test-only observer identity.
 */
export class Harness {
  prefix = 'faults';
  readonly nats = new NatsServerProcess({ auth: { prefix: this.prefix } });
  readonly pg = new PostgresServerProcess();
  readonly stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-agents-'));
  readonly url: Record<string, string> = {};
  readonly procs = new Map<string, ServiceProcess>();
  nc!: NatsConnection;
  private ports = new Map<string, number>();

  constructor(readonly o: HarnessOptions) {}

  get common() {
    return { NATS_URL: this.nats.url, SUBJECT_PREFIX: this.prefix, DATABASE_URL: this.pg.url('flexmig'), LOG_LEVEL: process.env.FLEXMIG_TEST_LOG_LEVEL || 'warn' };
  }

  static available(): string | undefined {
    if (!NatsServerProcess.available()) return 'nats-server is not installed (apt-get install nats-server)';
    if (!PostgresServerProcess.available()) return 'PostgreSQL server binaries are not installed (apt-get install postgresql)';
    return undefined;
  }

  async start(): Promise<this> {
    await this.nats.start();
    await this.pg.start();
    await this.startService('cpu-compat', 'cpu-compat', this.nats.serviceEnv('cpu-compat'));
    await this.startService('inventory', 'inventory', { HOST_DOWN_AFTER_MS: '3000', ...this.nats.serviceEnv('inventory'), ...this.o.inventory });
    await this.startService('scheduler', 'scheduler', {
      SCHEDULER_ID: 'sched-1',
      LEASE_TTL_MS: '3000',
      RECONCILE_INTERVAL_MS: '250',
      ...this.nats.serviceEnv('scheduler'),
      ...this.o.scheduler,
    });
    for (const h of this.o.hosts) await this.startAgent(h.id);
    await waitFor('all hosts up', async () => (await this.http('inventory', 'GET', '/api/v1/hosts')).body.items?.filter((h: { state: string }) => h.state === 'up').length === this.o.hosts.length, { timeoutMs: 30_000 });
    this.nc = await connect({
      servers: this.nats.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
      authenticator: credsAuthenticator(readFileSync(this.nats.observerCreds)),
    });
    return this;
  }

  async startService(name: string, app: string, env: Record<string, string>): Promise<ServiceProcess> {
    const port = this.ports.get(name) ?? (await freePort());
    this.ports.set(name, port);
    this.url[name] = `http://127.0.0.1:${port}`;
    const p = await new ServiceProcess(app, { ...this.common, ...env, PORT: String(port) }, port, name).start();
    this.procs.set(name, p);
    return p;
  }

  async startAgent(hostId: string): Promise<ServiceProcess> {
    const h = this.o.hosts.find((x) => x.id === hostId)!;
    return this.startService(hostId, 'agent', {
      ...(await this.nats.agentEnv(h.id)),
      HOST_ID: h.id,
      CLUSTER_NAME: 'faults',
      SIM_CPU: h.cpu,
      AGENT_STATE_DIR: this.stateDir,
      HEARTBEAT_INTERVAL_MS: '500',
      ...this.o.agent,
      ...h.env,
    });
  }

  /** kill -9, then start it again with the same settings. */
  async crashAndRestart(name: string, downForMs = 0): Promise<void> {
    const p = this.procs.get(name)!;
    await p.kill();
    if (downForMs) await sleep(downForMs);
    const restarted = await new ServiceProcess(p.app, p.env, p.port, name).start();
    this.procs.set(name, restarted);
  }

  async stop(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    for (const p of [...this.procs.values()].reverse()) await p.stop();
    await this.pg.destroy();
    await this.nats.destroy();
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  async http(service: string, method: string, route: string, body?: unknown) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await httpJson(this.url[service], method, route, body);
      } catch (e) {
        if (attempt >= 50) throw e; // the service is being restarted
        await sleep(100);
      }
    }
  }

  async createVm(name: string, hostId: string, memoryMiB = 1024) {
    const r = await this.http('inventory', 'POST', '/api/v1/vms', { name, hostId, memoryMiB, vcpus: 1 });
    if (r.status !== 201) throw new Error(`creating VM ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  async migrate(vmId: string, targetHostId: string) {
    const r = await this.http('scheduler', 'POST', '/api/v1/migrations', { vmId, targetHostId });
    if (r.status !== 202) throw new Error(`migrating ${vmId}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  migration = async (id: string) => (await this.http('scheduler', 'GET', `/api/v1/migrations/${id}`)).body;

  /**
   * Waits until the migration runs step `step`, or any step up to `last` (a poll can miss a short step on
   * a loaded machine: a test that only needs the migration somewhere in a range says so).
   */
  /**
   * Waits until the API says the migration runs a step from `step` to `last`, asking every 10 ms. A step that
   * begins and ends between two answers is missed: then, or when the migration ends first, it fails at once
   * with what each answer said and the longest time between two of them (a stalled poll shows as such).
   */
  waitForStep(id: string, step: number, last = step) {
    const which = last === step ? `step ${step}` : `a step from ${step} to ${last}`;
    const began = Date.now();
    const seen: string[] = [];
    let said = '';
    let answeredAt = began;
    let longestGapMs = 0;
    return waitFor(`migration ${id} to be in ${which}`, async () => {
      const m = await this.migration(id);
      longestGapMs = Math.max(longestGapMs, Date.now() - answeredAt);
      answeredAt = Date.now();
      const running = m.steps.findIndex((s: { status: string }) => s.status === 'running') + 1;
      const now = running ? `${m.state} in step ${running}` : m.state;
      if (now !== said) seen.push(`+${answeredAt - began} ms ${(said = now)}`);
      if (running >= step && running <= last) return m;
      if (TERMINAL.includes(m.state) || running > last) {
        const how = TERMINAL.includes(m.state) ? `ended ${m.state}` : `was past it`;
        throw new StopWaiting(`migration ${id} ${how} before ${which} was seen (the API said: ${seen.join(', ')}; longest time between two answers ${longestGapMs} ms)`);
      }
      return undefined;
    }, { timeoutMs: 30_000, intervalMs: 10 });
  }

  waitForEnd(id: string, timeoutMs = 90_000) {
    return waitFor(`migration ${id} to end`, async () => {
      const m = await this.migration(id);
      return m && TERMINAL.includes(m.state) ? m : undefined;
    }, { timeoutMs, intervalMs: 100 });
  }

  /** Where each agent says the VM is, and in which state. */
  async whereIs(vmId: string): Promise<{ hostId: string; state: string }[]> {
    const found: { hostId: string; state: string }[] = [];
    for (const h of this.o.hosts) {
      const msg = await this.nc.request(`${this.prefix}.agent.${h.id}.vm.list`, new TextEncoder().encode('{}'), { timeout: 3000 });
      const reply = JSON.parse(new TextDecoder().decode(msg.data));
      for (const v of reply.data.vms) if (v.vmId === vmId) found.push({ hostId: h.id, state: v.state });
    }
    return found;
  }

  async events(subject: string): Promise<EventJson[]> {
    const jsm = await jetstreamManager(this.nc);
    const stream = `${this.prefix.toUpperCase()}_EVENTS`;
    const name = `check_${Math.random().toString(36).slice(2)}`;
    await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: `${this.prefix}.events.${subject}` });
    const consumer = await jetstream(this.nc).consumers.get(stream, name);
    const out: EventJson[] = [];
    const batch = await consumer.fetch({ max_messages: 1000, expires: 1000 });
    for await (const m of batch) out.push(m.json());
    await jsm.consumers.delete(stream, name);
    return out;
  }

  /**
   * The invariants after any fault: the migration is terminal (and did not need a human), the VM runs
   * on exactly one host and nowhere else is a copy of it, inventory says the same host, and the events
   * of its outcome were published exactly once.
   */
  async expectCleanEnd(migrationId: string, vmId: string): Promise<{ state: string; hostId: string }> {
    const m = await this.waitForEnd(migrationId);
    expect(m.state).not.toBe('failed-needs-attention');
    const copies = await waitFor(`VM ${vmId} to settle on one host`, async () => {
      const where = await this.whereIs(vmId);
      return where.length === 1 && where[0].state === 'running' ? where : undefined;
    }, { timeoutMs: 15_000 }).catch(async () => this.whereIs(vmId));
    expect(copies).toEqual([{ hostId: expect.any(String), state: 'running' }]);
    const expectedHost = m.state === 'completed' ? m.targetHostId : m.sourceHostId;
    expect(copies[0].hostId).toBe(expectedHost);
    const vm = (await this.http('inventory', 'GET', `/api/v1/vms/${vmId}`)).body;
    expect(vm.hostId).toBe(expectedHost);
    const events = await waitFor('the outcome events', async () => {
      const mine = (await this.events('migration.>')).filter((e) => e.subject === migrationId).map((e) => e.type);
      const outcome = m.state === 'completed' ? 'migration.completed' : m.state === 'cancelled' ? 'migration.cancelled' : 'migration.rolled-back';
      return mine.includes(outcome) ? mine : undefined;
    }, { timeoutMs: 15_000 });
    for (const type of new Set(events)) if (type !== 'migration.step-completed') expect(events.filter((t) => t === type)).toHaveLength(1);
    return { state: m.state, hostId: expectedHost };
  }
}
