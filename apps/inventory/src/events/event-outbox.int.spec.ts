import 'reflect-metadata';
import type { DataSource } from 'typeorm';
import { register } from 'prom-client';
import { ErrorCode, HostDown } from '@flexmig/contracts';
import { EventPublisher, NatsBus } from '@flexmig/messaging';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { EventsTap, startTestDatabase, startTestNats, TcpProxy, TestDatabase, TestNats, waitFor } from '@flexmig/testing';
import { inventoryEntities } from '../entities';
import { inventoryMigrations } from '../migrations';
import { EventOutbox } from './event-outbox';

/**
 * Inventory's events leave with their change or not at all: written in the change's transaction, published
 * after it commits, in the order written, and kept while NATS cannot take them. Real PostgreSQL and NATS
 * (JetStream); what core NATS subscribers receive is what is checked.
 */
describe('EventOutbox', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let nats: TestNats;
  let ds: DataSource;
  let bus: NatsBus;
  let tap: EventsTap;
  let publisher: EventPublisher;
  let outbox: EventOutbox;
  const config = { hostCheckIntervalMs: 60_000 };

  const rows = async (): Promise<{ event_id: string; refused: string | null }[]> => ds.query('SELECT event_id, refused FROM event_outbox ORDER BY seq');
  /** The ids of the events received, once everything published before has arrived. */
  const delivered = () => tap.settled();
  /** A host going down, as the liveness sweep writes it: the change and its event in one transaction. */
  const hostDown = (hostId: string, at: Date, then: 'commit' | 'roll back' = 'commit') =>
    ds
      .transaction(async (m) => {
        await outbox.add(m, HostDown, { hostId, lastHeartbeatAt: at.toISOString() }, { id: `${hostId}:down:${at.getTime()}`, subject: hostId, time: at });
        if (then === 'roll back') throw new Error('the change failed after its event was written');
      })
      .then(() => `${hostId}:down:${at.getTime()}`);

  beforeAll(async () => {
    db = await startTestDatabase('event-outbox');
    nats = await startTestNats('event-outbox');
    await ensureDatabaseAndSchema(db.url, 'inventory');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations, poolSize: 4 }));
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'event-outbox-test' });
    await bus.ensureEventsStream();
    tap = await EventsTap.open(nats.url, nats.prefix);
    publisher = new EventPublisher(bus, 'inventory');
    outbox = new EventOutbox(ds, publisher, config);
  });

  afterAll(async () => {
    outbox?.onApplicationShutdown();
    await tap?.close();
    await bus?.close();
    await ds?.destroy();
    await nats?.stop();
    await db?.stop();
  });

  beforeEach(async () => {
    await outbox.flush();
    await delivered();
    tap.clear();
  });

  it('given changes committed with their events, then a flush publishes them in the order written, as CloudEvents of inventory, and empties the outbox', async () => {
    const at = new Date(Date.UTC(2026, 11, 4, 3, 0, 0, 123));
    const ids = [await hostDown('host-b', at), await hostDown('host-a', at), await hostDown('host-c', new Date(at.getTime() + 1))];
    expect((await rows()).map((r) => r.event_id)).toEqual(ids);
    await outbox.committed();
    expect(await delivered()).toEqual(ids);
    expect(tap.received[1]).toMatchObject({
      specversion: '1.0',
      id: ids[1],
      source: '/flexmig/inventory',
      type: 'host.down',
      subject: 'host-a',
      time: at.toISOString(), // the time of the change, not of the publish
      data: { hostId: 'host-a', lastHeartbeatAt: at.toISOString() },
    });
    expect(await rows()).toEqual([]);
    expect(await outbox.backlog()).toEqual({ waiting: 0, refused: 0 });
  });

  it('given a change that rolls back after writing its event, then the event is never published', async () => {
    await expect(hostDown('host-r', new Date(), 'roll back')).rejects.toThrow('the change failed');
    expect(await rows()).toEqual([]);
    await outbox.flush();
    expect(await delivered()).toEqual([]);
  });

  it('given an event that breaks its contract, then add refuses it before anything is written', async () => {
    await expect(
      ds.transaction((m) => outbox.add(m, HostDown, { hostId: 'host-x', lastHeartbeatAt: 'yesterday' }, { id: 'bad', subject: 'host-x' })),
    ).rejects.toMatchObject({ code: ErrorCode.ValidationFailed });
    expect(await rows()).toEqual([]);
  });

  it('given NATS refuses the publishes, then the events stay, and the next flush sends each once, in order', async () => {
    const failing = new EventOutbox(ds, { publish: () => Promise.reject(new Error('NATS connection closed')), reachable: true } as unknown as EventPublisher, config);
    const ids = [await hostDown('host-n1', new Date()), await hostDown('host-n2', new Date())];
    await expect(failing.flush()).rejects.toThrow('NATS connection closed');
    expect((await rows()).map((r) => r.event_id)).toEqual(ids);
    expect(await outbox.backlog()).toEqual({ waiting: 2, refused: 0 });
    // what a restarted process does first: flush what an earlier one left
    await outbox.committed();
    expect(await delivered()).toEqual(ids);
    expect(await rows()).toEqual([]);
  });

  it('given NATS gone (a restart), then a flush opens no transaction for publishes that can only time out, and the reconnect sends what waited', async () => {
    const proxy = await new TcpProxy(Number(new URL(nats.url).port)).start();
    const viaProxy = await NatsBus.connect({ url: `nats://${proxy.url}`, prefix: nats.prefix, name: 'event-outbox-outage' });
    // its timer is an hour away (config): only the reconnect can flush it
    const restarting = new EventOutbox(ds, new EventPublisher(viaProxy, 'inventory'), config);
    restarting.onApplicationBootstrap();
    try {
      expect(viaProxy.reachable).toBe(true);
      await proxy.stop(); // the connection closed and nothing listening: as while NATS restarts
      await waitFor('the client to see the disconnect', async () => !viaProxy.reachable || undefined);
      const id = await hostDown('host-outage', new Date());
      const transactions = jest.spyOn(ds, 'transaction');
      await restarting.flush();
      await restarting.committed();
      expect(transactions).not.toHaveBeenCalled();
      transactions.mockRestore();
      expect((await rows()).map((r) => r.event_id)).toEqual([id]);
      await proxy.start(); // NATS back on its port
      await waitFor('the reconnect to publish what waited', async () => (await rows()).length === 0 || undefined, { timeoutMs: 10_000 });
      expect(viaProxy.reachable).toBe(true);
      expect(await delivered()).toEqual([id]);
    } finally {
      restarting.onApplicationShutdown();
      await viaProxy.close();
      await proxy.stop();
    }
  });

  it('given a row an older version wrote that no contract accepts, then it stays with its reason and holds nothing back', async () => {
    await ds.query(`INSERT INTO event_outbox (event_id, type, subject, data, time) VALUES ('old-1', 'host.down', 'host-o', '{"hostId": "host-o"}', now()), ('old-2', 'host.renamed', 'host-o', '{}', now())`);
    const after = await hostDown('host-o', new Date());
    const refusedBefore = (await register.getSingleMetric('flexmig_inventory_events_refused_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
    await outbox.flush();
    expect(await delivered()).toEqual([after]);
    expect(await rows()).toEqual([
      { event_id: 'old-1', refused: expect.stringContaining('lastHeartbeatAt') },
      { event_id: 'old-2', refused: 'unknown event type host.renamed' },
    ]);
    const refusedAfter = (await register.getSingleMetric('flexmig_inventory_events_refused_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
    expect(refusedAfter - refusedBefore).toBe(2);
    expect(await outbox.backlog()).toEqual({ waiting: 0, refused: 2 });
    const held = async () => (await register.getSingleMetric('flexmig_inventory_outbox_events_refused')?.get())?.values[0]?.value;
    expect(await held()).toBe(2);
    // refused once: the next flush neither publishes nor counts them again
    await outbox.flush();
    expect(await delivered()).toEqual([after]);
    await ds.query("DELETE FROM event_outbox WHERE event_id IN ('old-1', 'old-2')");
    // a level, not a count: the alert on it clears once an operator has dealt with the rows
    await outbox.backlog();
    expect(await held()).toBe(0);
  });

  it('given two replicas flushing at once, then every event goes out once, in the order written', async () => {
    const other = new EventOutbox(ds, publisher, config);
    const ids: string[] = [];
    for (let i = 0; i < 450; i++) ids.push(await hostDown(`host-${i}`, new Date(Date.UTC(2026, 11, 4, 4, 0, 0, i))));
    await Promise.all([outbox.flush(), other.flush(), outbox.flush()]);
    expect(await delivered()).toEqual(ids);
    expect(await rows()).toEqual([]);
  });
});
