/**
 * Heartbeats reach HeartbeatBatch from the bus itself, not through Nest's pipeline (HeartbeatListener): what
 * the pipeline checked is still checked, against a real NATS server — the contract, and the subject naming
 * the beat's host.
 */
import { Logger } from '@nestjs/common';
import { HostHeartbeat, MessageOf } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { startTestNats, TestNats } from '@flexmig/testing';
import { HeartbeatBatch } from './heartbeat-batch';
import { HeartbeatListener } from './heartbeat-listener';

type Beat = MessageOf<typeof HostHeartbeat>;
const beat = (hostId: string, n: number): Beat => ({
  hostId,
  at: new Date(1_700_000_000_000 + n).toISOString(),
  vmCount: 0,
  instanceId: '7f1c2b9e-5a3d-4c8e-9b1f-2d6e8a4c0b13',
  vmDigest: '0123456789abcdef',
});

describe('HeartbeatListener against a real NATS server', () => {
  let nats: TestNats;
  let inventory: NatsBus;
  let agent: NatsBus;
  let received: Beat[];
  let listener: HeartbeatListener;
  let warn: jest.SpyInstance;

  beforeAll(async () => {
    nats = await startTestNats('heartbeat-listener');
    inventory = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'inventory' });
    agent = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'agent' });
  });
  beforeEach(async () => {
    received = [];
    const batch = { receive: async (b: Beat) => void received.push(b) } as unknown as HeartbeatBatch;
    listener = new HeartbeatListener(inventory, batch);
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    listener.onApplicationBootstrap();
    await inventory.nc.flush(); // the subscription is the server's before anything is published
  });
  afterEach(() => {
    listener.beforeApplicationShutdown();
    warn.mockRestore();
  });
  afterAll(async () => {
    await agent?.close();
    await inventory?.close();
    await nats?.stop();
  });

  /**
   * Everything the agent published has been handled: the server delivers it to inventory's connection
   * before answering that connection's PING, and the listener hands a beat on (or refuses it) in the
   * message's own callback.
   */
  const settle = async (): Promise<void> => {
    await agent.nc.flush();
    await inventory.nc.flush();
  };

  it("given beats on their own host's subjects, then each reaches the batch as sent", async () => {
    agent.publish(HostHeartbeat, beat('host-a', 1), { hostId: 'host-a' });
    agent.publish(HostHeartbeat, beat('host-b', 2), { hostId: 'host-b' });
    await settle();
    expect(received).toEqual([beat('host-a', 1), beat('host-b', 2)]);
  });

  it("given a beat for host-b on host-a's subject (what host-a's identity may publish), then it is refused and said so", async () => {
    agent.nc.publish(`${nats.prefix}.inventory.host.host-a.heartbeat`, JSON.stringify(beat('host-b', 3)));
    await settle();
    expect(received).toEqual([]);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/heartbeat on .*inventory\.host\.host-a\.heartbeat not taken: the subject .* names host host-a, the message host host-b: refused/));
  });

  it('given a beat outside its contract or not JSON, then it is dropped before the batch', async () => {
    agent.nc.publish(`${nats.prefix}.inventory.host.host-a.heartbeat`, JSON.stringify({ ...beat('host-a', 4), vmCount: -1 }));
    agent.nc.publish(`${nats.prefix}.inventory.host.host-a.heartbeat`, '{not json');
    await settle();
    expect(received).toEqual([]);
  });

  it("shares inventory's queue group: of two replicas' listeners, one takes each beat", async () => {
    const other: Beat[] = [];
    const replica = new HeartbeatListener(inventory, { receive: async (b: Beat) => void other.push(b) } as unknown as HeartbeatBatch);
    replica.onApplicationBootstrap();
    await inventory.nc.flush();
    try {
      for (let i = 0; i < 40; i++) agent.publish(HostHeartbeat, beat(`host-${i}`, i), { hostId: `host-${i}` });
      await settle();
      expect(received.length + other.length).toBe(40); // 80 if each replica took every beat
      expect(received.length).toBeGreaterThan(0); // NATS picks a member at random: all 40 to one has odds of 2^-39
      expect(other.length).toBeGreaterThan(0);
      expect(new Set([...received, ...other].map((b) => b.hostId)).size).toBe(40);
    } finally {
      replica.beforeApplicationShutdown();
    }
  });

  it('given shutdown begun, then no beat reaches the batch (its last flush comes after)', async () => {
    listener.beforeApplicationShutdown();
    agent.publish(HostHeartbeat, beat('host-a', 5), { hostId: 'host-a' });
    await settle();
    expect(received).toEqual([]);
  });
});
