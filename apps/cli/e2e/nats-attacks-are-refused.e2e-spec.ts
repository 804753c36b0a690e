import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, credsAuthenticator, errors, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { SERVICE_RECONNECT } from '@flexmig/messaging';
import { NatsServerProcess, permissionViolation, waitFor } from '@flexmig/testing';
import { eventsStreamName, initAuthDir, revokeAgent, type ServiceRole, subscriberDurable } from '@flexmig/nats-auth';

/**
 * The attacks of issue 9 against a real nats-server running the configuration `flexmig auth init`
 * writes: each is refused for a wrong identity or none, and the legitimate flow beside it still works.
 */
const prefix = 'sec';
const stream = eventsStreamName(prefix);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const stepCommand = { migrationId: '7f1c2b8e-0000-4000-8000-000000000001', stepName: 'stop-source' };

describe('NATS identities (operator mode, generated configuration)', () => {
  const nats = new NatsServerProcess({ auth: { prefix } });
  const open: NatsConnection[] = [];

  /** A connection as one identity, replying on its own inbox prefix as the services do. */
  async function as(creds: string, inboxName: string, extra: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> {
    const nc = await connect({
      servers: nats.url,
      authenticator: credsAuthenticator(readFileSync(creds)),
      inboxPrefix: `_INBOX.${inboxName}`,
      maxReconnectAttempts: 0,
      ...extra,
    });
    open.push(nc);
    return nc;
  }
  const service = (role: ServiceRole, extra: Partial<NodeConnectionOptions> = {}) => as(nats.creds(role), role, extra);
  const agent = async (hostId: string) => as(await nats.agentCreds(hostId), hostId);

  const violation = (nc: NatsConnection, subject: string, act: () => unknown) => permissionViolation(nc, subject, act);

  /** What a connection goes through from now on (disconnects, reconnects, errors), each with its time: for a failure's message. */
  function statusHistory(nc: NatsConnection): () => string[] {
    const seen: string[] = [];
    const t0 = Date.now();
    void (async () => {
      for await (const st of nc.status()) {
        const detail = 'error' in st ? ` ${String(st.error)}` : 'server' in st ? ` ${String(st.server)}` : '';
        seen.push(`+${Date.now() - t0} ms ${st.type}${detail}`);
      }
    })();
    return () => seen;
  }

  beforeAll(async () => {
    await nats.start();
    // the events stream, as inventory and the scheduler make it at start
    const jsm = await jetstreamManager(await service('scheduler'));
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.events.>`] });
  });

  afterAll(async () => {
    for (const nc of open) await nc.close().catch(() => undefined);
    await nats.destroy();
  });

  it('given no identity, when a client connects to send stop-source to host-c, then the server refuses it (Authorization Violation)', async () => {
    await expect(connect({ servers: nats.url, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization Violation/i);
  });

  it("given host-a's identity, when it listens on host-c's subjects, then the subscription is refused and host-c's commands never reach it", async () => {
    const hostA = await agent('host-a');
    const sub = hostA.subscribe(`${prefix}.agent.host-c.>`);
    const refused = await violation(hostA, `${prefix}.agent.host-c.>`, () => hostA.flush());
    expect(refused.operation).toBe('subscription');
    expect(await sub.closed).toBeInstanceOf(errors.PermissionViolationError);
  });

  it.each([
    ['heartbeat', `${prefix}.inventory.host.host-c.heartbeat`],
    ['registration', `${prefix}.inventory.host.host-c.register`],
    ['migration.completed event', `${prefix}.events.migration.completed`],
    ['host.down event', `${prefix}.events.host.down`],
    ["a step command to host-c", `${prefix}.agent.host-c.migration.step`],
  ])("given host-a's identity, when it publishes host-c's %s, then the publish is refused", async (_what, subject) => {
    const hostA = await agent('host-a');
    const refused = await violation(hostA, subject, () => hostA.publish(subject, enc({ hostId: 'host-c', ...stepCommand })));
    expect(refused.operation).toBe('publish');
  });

  it("given host-a's identity, when it registers, heartbeats and reports progress as itself, then inventory and the scheduler receive them", async () => {
    const inventory = await service('inventory');
    const scheduler = await service('scheduler');
    const registrations = inventory.subscribe(`${prefix}.inventory.host.*.register`);
    void (async () => {
      for await (const m of registrations) m.respond(enc({ ok: true, data: { subject: m.subject } }));
    })();
    const beats = inventory.subscribe(`${prefix}.inventory.host.*.heartbeat`, { max: 1 });
    const progress = scheduler.subscribe(`${prefix}.progress.migration.*.*`, { max: 1 });
    await inventory.flush();
    await scheduler.flush();
    const hostA = await agent('host-a');
    const reply = await hostA.request(`${prefix}.inventory.host.host-a.register`, enc({ hostId: 'host-a' }), { timeout: 2_000 });
    expect(reply.json()).toEqual({ ok: true, data: { subject: `${prefix}.inventory.host.host-a.register` } });
    hostA.publish(`${prefix}.inventory.host.host-a.heartbeat`, enc({ hostId: 'host-a' }));
    hostA.publish(`${prefix}.progress.migration.${stepCommand.migrationId}.host-a`, enc({}));
    for await (const m of beats) expect(m.subject).toBe(`${prefix}.inventory.host.host-a.heartbeat`);
    for await (const m of progress) expect(m.subject).toBe(`${prefix}.progress.migration.${stepCommand.migrationId}.host-a`);
  });

  it('given the scheduler, when it sends host-c a step command, then host-c answers through its response permission, on the scheduler\'s own inbox', async () => {
    const hostC = await agent('host-c');
    const steps = hostC.subscribe(`${prefix}.agent.host-c.>`);
    void (async () => {
      for await (const m of steps) m.respond(enc({ ok: true, data: { to: m.reply } }));
    })();
    await hostC.flush();
    const scheduler = await service('scheduler');
    const reply = (await scheduler.request(`${prefix}.agent.host-c.migration.step`, enc(stepCommand), { timeout: 2_000 })).json<{ data: { to: string } }>();
    expect(reply.data.to).toMatch(/^_INBOX\.scheduler\./);
  });

  it.each([
    ['scheduler', '_INBOX.>'],
    ['scheduler', '_INBOX.inventory.>'],
    ['subscriber', '_INBOX.scheduler.>'],
    ['console', '_INBOX.scheduler.>'],
    ['console', `${'${prefix}'}.inventory.>`],
    ['host-a', '_INBOX.host-c.>'],
    ['host-a', '_INBOX.scheduler.>'],
    ['host-a', '_INBOX.>'],
    ['cpu-compat', '>'],
  ])('given %s, when it subscribes to %s (another identity\'s replies), then the subscription is refused', async (who, subject) => {
    const nc = who.startsWith('host-') ? await agent(who) : await service(who as 'scheduler');
    nc.subscribe(subject);
    expect((await violation(nc, subject, () => nc.flush())).operation).toBe('subscription');
  });

  it.each(['inventory', 'cpu-compat', 'subscriber', 'console', 'verifier', 'host-a'])(
    'given %s, when it asks inventory to relocate a VM (saga step 9, the scheduler\'s), then the request is refused',
    async (who) => {
      const nc = who === 'host-a' ? await agent(who) : await service(who as 'inventory');
      const subject = `${prefix}.inventory.vm.relocate`;
      const refused = await violation(nc, subject, () => nc.request(subject, enc({ vmId: 'x' }), { timeout: 1_000 }));
      expect(refused.operation).toBe('publish');
    },
  );

  it("given the verifier, when it asks host-c to check a guest's memory, then host-c gets it and answers on the verifier's own inbox", async () => {
    const hostC = await agent('host-c');
    const checks = hostC.subscribe(`${prefix}.agent.host-c.vm.check-memory`);
    void (async () => {
      for await (const m of checks) m.respond(enc({ ok: true, data: { to: m.reply } }));
    })();
    await hostC.flush();
    const verifier = await service('verifier');
    const reply = (await verifier.request(`${prefix}.agent.host-c.vm.check-memory`, enc({ vmId: 'x' }), { timeout: 2_000 })).json<{ data: { to: string } }>();
    expect(reply.data.to).toMatch(/^_INBOX\.verifier\./);
  });

  it.each([
    ['scheduler', 'vm.check-memory'],
    ['inventory', 'vm.check-memory'],
    ['verifier', 'migration.step'],
    ['verifier', 'vm.start'],
    ['verifier', 'vm.pause'],
  ])("given %s, when it sends host-c's %s (not a command of its own), then the request is refused", async (who, command) => {
    const nc = await service(who as ServiceRole);
    const subject = `${prefix}.agent.host-c.${command}`;
    const refused = await violation(nc, subject, () => nc.request(subject, enc({ vmId: 'x' }), { timeout: 1_000 }));
    expect(refused.operation).toBe('publish');
  });

  it("given inventory, when it tells host-c of a reservation, then host-c hears it; the scheduler's or another agent's forged notice is refused and never reaches host-c", async () => {
    const hostC = await agent('host-c');
    const subject = `${prefix}.agent.host-c.reservation.notice`;
    const heard: string[] = [];
    const sub = hostC.subscribe(subject, {
      callback: (_, m) => {
        heard.push(m.json<{ migrationId: string }>().migrationId);
      },
    });
    await hostC.flush();
    for (const [who, nc] of [['scheduler', await service('scheduler')], ['host-a', await agent('host-a')], ['verifier', await service('verifier')]] as const) {
      const refused = await violation(nc, subject, () => nc.publish(subject, enc({ migrationId: `forged-by-${who}` })));
      expect([who, refused.operation]).toEqual([who, 'publish']);
    }
    const inventory = await service('inventory');
    inventory.publish(subject, enc({ migrationId: 'from-inventory' }));
    await inventory.flush();
    await hostC.flush();
    sub.unsubscribe();
    expect(heard).toEqual(['from-inventory']);
  });

  it.each(['host.get', 'host.list', 'vm.get', 'vm.list'])(
    "given host-a's identity, when it asks inventory's %s (a view of the fleet), then the request is refused: an agent reads only its migrations' reservations",
    async (read) => {
      const hostA = await agent('host-a');
      const subject = `${prefix}.inventory.${read}`;
      const refused = await violation(hostA, subject, () => hostA.request(subject, enc({ hostId: 'host-c' }), { timeout: 1_000 }));
      expect(refused.operation).toBe('publish');
    },
  );

  it.each(['inventory', 'cpu-compat', 'subscriber', 'console', 'verifier', 'host-a'])(
    'given %s, when it publishes a migration.completed event before the scheduler does, then the publish is refused and nothing reaches the stream',
    async (who) => {
      const nc = who === 'host-a' ? await agent(who) : await service(who as 'inventory');
      const subject = `${prefix}.events.migration.completed`;
      const before = (await (await jetstreamManager(await service('scheduler'))).streams.info(stream)).state.messages;
      await violation(nc, subject, () => nc.publish(subject, enc({ type: 'migration.completed' })));
      await expect(jetstream(nc).publish(subject, enc({}), { timeout: 1_000 })).rejects.toThrow();
      const after = (await (await jetstreamManager(await service('scheduler'))).streams.info(stream)).state.messages;
      expect(after).toBe(before);
    },
  );

  it('given the subscriber, then it reads the events through a durable of its own, and can neither publish an event nor read another durable', async () => {
    const scheduler = await service('scheduler');
    await jetstream(scheduler).publish(`${prefix}.events.migration.completed`, enc({ type: 'migration.completed', id: 'm1:completed' }), { msgID: 'm1:completed' });
    const sub = await service('subscriber');
    const jsm = await jetstreamManager(sub);
    await jsm.consumers.add(stream, { durable_name: subscriberDurable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: `${prefix}.events.>` });
    const consumer = await jetstream(sub).consumers.get(stream, subscriberDurable);
    const got: string[] = [];
    for await (const m of await consumer.fetch({ max_messages: 10, expires: 1_000 })) {
      got.push(m.json<{ id: string }>().id);
      m.ack();
    }
    expect(got).toContain('m1:completed');

    await violation(sub, `${prefix}.events.migration.completed`, () => sub.publish(`${prefix}.events.migration.completed`, enc({})));
    const other = `$JS.API.CONSUMER.CREATE.${stream}.someone-else`;
    await violation(sub, other, () => jsm.consumers.add(stream, { name: 'someone-else', ack_policy: AckPolicy.None }));
  });

  it('given a host that did not exist when NATS started, when it is issued an identity, then it connects and serves its own subjects without a restart', async () => {
    const late = await agent('host-late');
    const sub = late.subscribe(`${prefix}.agent.host-late.vm.list`, { max: 1 });
    void (async () => {
      for await (const m of sub) m.respond(enc({ ok: true, data: { hostId: 'host-late', vms: [] } }));
    })();
    await late.flush();
    const scheduler = await service('scheduler');
    const reply = await scheduler.request(`${prefix}.agent.host-late.vm.list`, enc({}), { timeout: 2_000 });
    expect(reply.json()).toMatchObject({ data: { hostId: 'host-late' } });
  });

  it('given host-r revoked (flexmig auth revoke-agent) and a reload signal, then its identity is refused and its connection closed, while others stay', async () => {
    const credsFile = await nats.agentCreds('host-r');
    const credsBytes = readFileSync(credsFile);
    const hostR = await as(credsFile, 'host-r');
    // connected as the services are (NatsBus's SERVICE_RECONNECT). Applying the reloaded account JWT,
    // nats-server 2.9.10 disconnects the other connections of the account too (this one, in every run here),
    // and their reconnects may meet "Authentication Timeout" while the reload is under way: twice in a row,
    // and nats.js then gave up reconnecting unless told not to (once on CI; 2 of 4 runs of this file here
    // while a CI run loaded the machine)
    const scheduler = await service('scheduler', SERVICE_RECONNECT);
    const history = statusHistory(scheduler);
    await revokeAgent(nats.authDir!, 'host-r');
    nats.reload();
    // refused: the server answers "Authorization Violation", or drops the handshake before the client hears why
    const refusal = await waitFor('the revoked identity to be refused', () =>
      connect({ servers: nats.url, authenticator: credsAuthenticator(credsBytes), maxReconnectAttempts: 0, timeout: 2_000 }).then(
        (nc) => nc.close().then(() => false),
        (e: Error) => e.message,
      ),
      { timeoutMs: 8_000, intervalMs: 200 },
    );
    expect(refusal).toMatch(/Authorization Violation|timeout/i);
    // the server runs on, and other identities still get in. While it applies the reload it may let a new
    // handshake run past its auth timeout (seen once on CI: "Authentication Timeout"); a client connects again.
    // Given as long as the scheduler's reconnect below: in a fresh-clone CI run of 2026-12-03 every attempt for
    // 8 s timed out (the suites run one at a time there). A refused identity never gets in, however long the wait
    const fresh = await waitFor('another identity to get in after the reload', () => service('scheduler'), { timeoutMs: 30_000, intervalMs: 200 });
    expect(fresh.isClosed()).toBe(false);
    // as long as the waits above: in a fresh-clone CI run of 2026-12-05 (3c46feb) the server had not closed it
    // within 5 s of the other identity getting in. A connection the server keeps open never closes, however long
    await waitFor("host-r's open connection to be closed", () => hostR.isClosed(), { timeoutMs: 30_000 });
    // the other identity's connection stays: it is not closed, and the server answers it (a round trip).
    // The reload may drop it as it drops every connection of the account, at any point up to here (once on
    // CI the flush met "connection disconnected"; in another CI run its reconnects failed for 8 s): it
    // reconnects under the same identity, and a round trip then succeeds. A refused identity would never get
    // that answer: the wait times out, and says what the connection went through
    expect(scheduler.isClosed()).toBe(false);
    await waitFor('the scheduler identity to get an answer from the server', () => scheduler.flush().then(() => true), { timeoutMs: 30_000, intervalMs: 200 }).catch(
      (e: Error) => {
        throw new Error(`${e.message}\nthe connection's status since the revocation:\n${history().join('\n') || '(none)'}`);
      },
    );
    expect(scheduler.isClosed()).toBe(false);
  });
});

describe('NATS over TLS (the generated server certificate)', () => {
  const nats = new NatsServerProcess({ auth: { prefix }, tls: true });
  let otherCa: string;

  beforeAll(async () => {
    await nats.start();
    const otherDir = mkdtempSync(path.join(tmpdir(), 'flexmig-other-ca-'));
    await initAuthDir(otherDir, { prefix, tls: true });
    otherCa = path.join(otherDir, 'ca.pem');
  });

  afterAll(async () => {
    await nats.destroy();
    rmSync(path.dirname(otherCa), { recursive: true, force: true });
  });

  const creds = () => credsAuthenticator(readFileSync(nats.creds('scheduler')));

  it('given the deployment\'s CA, then a service connects over TLS', async () => {
    const nc = await connect({ servers: nats.url, authenticator: creds(), tls: { caFile: nats.tlsCa }, maxReconnectAttempts: 0 });
    expect(nc.info?.tls_required).toBe(true);
    await nc.close();
  });

  it('given another CA, then the client refuses the server (a server that is not ours never sees the credentials)', async () => {
    await expect(connect({ servers: nats.url, authenticator: creds(), tls: { caFile: otherCa }, maxReconnectAttempts: 0 })).rejects.toThrow();
  });
});
