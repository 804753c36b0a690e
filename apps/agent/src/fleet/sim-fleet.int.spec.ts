import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import {
  DEFAULT_ALLOCATION_RATIOS,
  CompensateStep,
  ErrorCode,
  FlexmigError,
  GetReservation,
  ReservationNotice,
  HostHeartbeat,
  ListAgentVms,
  MigrationPolicySchema,
  RegisterHost,
  ReplyOf,
  RequestOf,
  RunStep,
  StartVm,
  StepCommand,
  stepName,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { hostRecord, TestNats, startTestNats } from '@flexmig/testing';
import { SimFleet } from './sim-fleet';
import { sleep } from '@flexmig/timing';

const fleetSize = 50;

/** A stand-in inventory's answer to a registration: the host registered in one cluster. */
function acceptingInventory(): (r: RequestOf<typeof RegisterHost>) => ReplyOf<typeof RegisterHost> {
  const now = new Date().toISOString();
  const clusterId = randomUUID();
  return (r) => ({
    cluster: { id: clusterId, name: r.clusterName ?? 'x', imcMode: null, ...DEFAULT_ALLOCATION_RATIOS, createdAt: now },
    host: hostRecord(r.hostId, {
      clusterId, hostname: r.hostname, cpu: r.cpu, memoryMiB: r.memoryMiB, vcpus: r.vcpus, driver: r.driver,
      migrationAddress: r.migrationAddress, lastHeartbeatAt: now, registeredAt: now,
    }),
  });
}
const heartbeatIntervalMs = 200;


describe('SimFleet against real NATS', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));
  let nats: TestNats;
  let client: NatsBus;
  let fleet: SimFleet | undefined;

  beforeAll(async () => {
    Logger.overrideLogger(['error']); // 50 hosts retrying registration with no inventory: keep the output readable
    nats = await startTestNats('sim-fleet');
    client = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'sim-fleet-test', requestTimeoutMs: 2_000 });
  });

  afterAll(async () => {
    await fleet?.stop();
    await client?.close();
    await nats?.stop();
  });

  it(`starts ${fleetSize} hosts without inventory, each answering on its own subjects and heartbeating, and stops cleanly`, async () => {
    const beats = new Map<string, number>();
    const beatSub = client.subscribe(HostHeartbeat, (m) => {
      beats.set(m.hostId, (beats.get(m.hostId) ?? 0) + 1);
    });
    await client.nc.flush();

    const started = Date.now();
    fleet = await SimFleet.start({
      natsUrl: nats.url,
      subjectPrefix: nats.prefix,
      size: fleetSize,
      hostPrefix: 'fleet',
      cpus: ['SandyBridge', 'IvyBridge', 'Haswell'],
      clusterName: 'fleet-test',
      heartbeatIntervalMs,
      sim: { memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, dirtyRateMiBps: 200, workingSetMiB: 256 },
    });
    // registration with the absent inventory retries in the background: it must not hold the start
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(fleet.hosts.map((h) => h.hostId)).toEqual(Array.from({ length: fleetSize }, (_, i) => `fleet-${String(i + 1).padStart(3, '0')}`));
    expect(fleet.status().every((s) => s.registration === 'pending')).toBe(true);
    expect(fleet.hosts.slice(0, 4).map((h) => h.cpu.modelName)).toEqual([
      fleet.hosts[0]!.cpu.modelName,
      fleet.hosts[1]!.cpu.modelName,
      fleet.hosts[2]!.cpu.modelName,
      fleet.hosts[0]!.cpu.modelName,
    ]);
    expect(new Set(fleet.hosts.slice(0, 3).map((h) => h.status().cpu))).toEqual(new Set(['SandyBridge', 'IvyBridge', 'Haswell']));

    // each host answers on its own subject, and only for itself
    const vmOn7 = randomUUID();
    await client.request(
      StartVm,
      { vm: { id: vmOn7, name: 'vm-on-7', memoryMiB: 2048, vcpus: 2, cpuBaseline: 'IvyBridge' } },
      { params: { hostId: 'fleet-007' } },
    );
    const lists = await Promise.all(fleet.hosts.map((h) => client.request(ListAgentVms, {}, { params: { hostId: h.hostId } })));
    lists.forEach((l, i) => {
      expect(l.hostId).toBe(fleet!.hosts[i]!.hostId);
      expect(l.vms).toEqual(l.hostId === 'fleet-007' ? [{ vmId: vmOn7, state: 'running', memoryMiB: 2048 }] : []);
    });
    await expect(client.request(ListAgentVms, {}, { params: { hostId: 'fleet-051' }, timeoutMs: 500 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    // every host heartbeats, on its own
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && [...fleet.hosts].some((h) => (beats.get(h.hostId) ?? 0) < 2)) {
      await sleep(50);
    }
    expect(fleet.hosts.filter((h) => (beats.get(h.hostId) ?? 0) < 2).map((h) => h.hostId)).toEqual([]);
    expect(beats.size).toBe(fleetSize);
    expect(fleet.host('fleet-007')!.status().vmCount).toBe(1);

    // stop: no more answers, no more heartbeats, registration loops ended
    await fleet.stop();
    expect(fleet.status().every((s) => s.registration === 'stopped')).toBe(true);
    // the fleet's bus drained (the server has every beat it sent); a round trip on ours delivers those still on
    // their way to us (a CI run once counted one more after the sleep), so only a beat sent after stop is counted
    await client.nc.flush();
    const countAtStop = [...beats.values()].reduce((a, b) => a + b, 0);
    await sleep(3 * heartbeatIntervalMs);
    expect([...beats.values()].reduce((a, b) => a + b, 0)).toBe(countAtStop);
    await expect(client.request(ListAgentVms, {}, { params: { hostId: 'fleet-001' }, timeoutMs: 500 })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    fleet = undefined;
    beatSub.unsubscribe();
  });

  it('registers in the background once inventory answers, and gives up only on a refusal', async () => {
    const small = await SimFleet.start({
      natsUrl: nats.url,
      subjectPrefix: nats.prefix,
      size: 4,
      hostPrefix: 'late',
      cpus: ['IvyBridge'],
      clusterName: 'fleet-test',
      heartbeatIntervalMs: 1_000,
      sim: { memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, dirtyRateMiBps: 200, workingSetMiB: 256 },
    });
    try {
      await sleep(300); // a first round of attempts finds nobody
      expect(small.status().every((s) => s.registration === 'pending' && s.registrationError)).toBe(true);
      const accept = acceptingInventory();
      // a stand-in inventory that refuses one host, as a CPU below the cluster's mode would be
      const inventory = client.handle(RegisterHost, async (r) => {
        if (r.hostId === 'late-003') throw new FlexmigError(ErrorCode.CpuIncompatible, 'host late-003 lacks the cluster mode Haswell');
        return accept(r);
      });
      await client.nc.flush();
      await small.registrationsSettled();
      inventory.unsubscribe();
      expect(small.status().map((s) => [s.hostId, s.registration])).toEqual([
        ['late-001', 'registered'],
        ['late-002', 'registered'],
        ['late-003', 'refused'],
        ['late-004', 'registered'],
      ]);
      expect(small.host('late-003')!.status().registrationError).toContain('lacks the cluster mode');
    } finally {
      await small.stop();
    }
  });

  it('keeps at most registrationsInFlight registrations in flight, so a slow inventory is not flooded', async () => {
    const inventoryWaitMs = 20;
    let inFlight = 0;
    let most = 0;
    const accept = acceptingInventory();
    // a stand-in inventory that takes its time over each registration
    const inventory = client.handle(RegisterHost, async (r) => {
      most = Math.max(most, ++inFlight);
      await sleep(inventoryWaitMs);
      inFlight--;
      return accept(r);
    });
    await client.nc.flush();
    const gated = await SimFleet.start({
      natsUrl: nats.url,
      subjectPrefix: nats.prefix,
      size: 24,
      hostPrefix: 'gated',
      cpus: ['IvyBridge'],
      clusterName: 'fleet-test',
      heartbeatIntervalMs: 1_000,
      registrationsInFlight: 3,
      sim: { memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, dirtyRateMiBps: 200, workingSetMiB: 256 },
    });
    try {
      await gated.registrationsSettled();
      expect(gated.status().every((s) => s.registration === 'registered')).toBe(true);
      expect(most).toBe(3);
    } finally {
      inventory.unsubscribe();
      await gated.stop();
    }
  });

  /** Two hosts, pair-001 and pair-002, not registered: the test plays the scheduler and inventory. */
  const startPair = (switchover: 'steps' | 'qemu') =>
    SimFleet.start({
      natsUrl: nats.url,
      subjectPrefix: nats.prefix,
      size: 2,
      hostPrefix: 'pair',
      cpus: ['IvyBridge'],
      clusterName: 'fleet-test',
      heartbeatIntervalMs: 1_000,
      register: false,
      sim: { memoryMiB: 65_536, vcpus: 32, bandwidthMiBps: 1250, timeScale: 0, dirtyRateMiBps: 200, workingSetMiB: 256, switchover },
    });

  /** What the agents check with inventory before they take part: the scheduler's reservation (step 1), with the target host's registered migration address. */
  const standInInventory = (migrationId: string, vm: { id: string; memoryMiB: number; vcpus: number }) => {
    const now = new Date().toISOString();
    const reservations = client.handle(GetReservation, async (r) =>
      r.migrationId === migrationId
        ? { reservation: { migrationId, vmId: vm.id, hostId: 'pair-002', memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, createdAt: now }, targetMigrationAddress: 'pair-002.sim:49152' }
        : { reservation: null, targetMigrationAddress: null },
    );
    cleanups.push(() => reservations.unsubscribe());
  };

  it('runs a migration between two of its hosts over NATS (steps 2 to 8, the agent ledger included)', async () => {
    const pair = await startPair('steps');
    try {
      const vm = { id: randomUUID(), name: 'mover', memoryMiB: 4096, vcpus: 2, cpuBaseline: 'IvyBridge', workload: { dirtyRateMiBps: 300 } };
      await client.request(StartVm, { vm }, { params: { hostId: 'pair-001' } });
      const migrationId = randomUUID();
      const cmd = (step: number, role: 'source' | 'target'): StepCommand => ({
        migrationId, step, stepName: stepName(step), attempt: 1, role, vm, sourceHostId: 'pair-001', targetHostId: 'pair-002',
        policy: MigrationPolicySchema.parse({}),
      });
      const run = (step: number, role: 'source' | 'target') =>
        client.request(RunStep, cmd(step, role), { params: { hostId: role === 'source' ? 'pair-001' : 'pair-002' } });
      standInInventory(migrationId, vm);
      // steps out of order, or for a migration without a reservation, are refused before anything runs
      await expect(run(8, 'source')).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      await expect(run(7, 'target')).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      const stranger = { ...cmd(2, 'target'), migrationId: randomUUID() };
      await expect(client.request(RunStep, stranger, { params: { hostId: 'pair-002' } })).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      await expect(
        client.request(CompensateStep, { migrationId, step: 5, stepName: 'pause-source', compensation: 'resume-source', role: 'source', vmId: vm.id }, { params: { hostId: 'pair-001' } }),
      ).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      await run(2, 'target');
      const s3 = await run(3, 'source');
      const s4 = await run(4, 'source');
      await run(5, 'source');
      const s6 = await run(6, 'source');
      await run(6, 'target');
      await run(7, 'target');
      await run(8, 'source');
      expect(s3.stats).toMatchObject({ passes: 1, bytesTransferred: 4096 * 1024 * 1024 });
      expect(s4.stats!.passes).toBeGreaterThan(1);
      expect(s6.stats!.downtimeMs).toBeGreaterThan(0);
      expect((await run(6, 'source')).repeated).toBe(true);
      const [src, dst] = await Promise.all(['pair-001', 'pair-002'].map((hostId) => client.request(ListAgentVms, {}, { params: { hostId } })));
      expect(src!.vms).toEqual([]);
      expect(dst!.vms).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 4096 }]);
    } finally {
      await pair.stop();
    }
  });

  it('with SIM_SWITCHOVER=qemu, step 4 pauses the guest (step 5 done with it) and step 6 starts it on the target (step 7 done with it)', async () => {
    const pair = await startPair('qemu');
    try {
      const vm = { id: randomUUID(), name: 'mover', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
      await client.request(StartVm, { vm }, { params: { hostId: 'pair-001' } });
      const migrationId = randomUUID();
      standInInventory(migrationId, vm);
      const run = (step: number, role: 'source' | 'target') =>
        client.request(
          RunStep,
          { migrationId, step, stepName: stepName(step), attempt: 1, role, vm, sourceHostId: 'pair-001', targetHostId: 'pair-002', policy: MigrationPolicySchema.parse({}) },
          { params: { hostId: role === 'source' ? 'pair-001' : 'pair-002' } },
        );
      await run(2, 'target');
      await run(3, 'source');
      const s4 = await run(4, 'source');
      expect(s4.pausedAt).toEqual(expect.any(String));
      const [s6, t6] = await Promise.all([run(6, 'source'), run(6, 'target')]);
      expect(s6.resumedAt).toBeUndefined();
      expect(t6.resumedAt).toEqual(expect.any(String));
      // the scheduler takes 5 and 7 as done; one that sends them anyway gets the recorded answers
      expect(await run(5, 'source')).toMatchObject({ repeated: true, pausedAt: s4.pausedAt });
      expect(await run(7, 'target')).toMatchObject({ repeated: true, resumedAt: t6.resumedAt });
      await run(8, 'source');
      const [src, dst] = await Promise.all(['pair-001', 'pair-002'].map((hostId) => client.request(ListAgentVms, {}, { params: { hostId } })));
      expect(src!.vms).toEqual([]);
      expect(dst!.vms).toEqual([{ vmId: vm.id, state: 'running', memoryMiB: 1024 }]);
    } finally {
      await pair.stop();
    }
  });

  it("takes inventory's notice of the reservation for its entry steps instead of asking, once; after a release it asks", async () => {
    const pair = await startPair('steps');
    try {
      const vm = { id: randomUUID(), name: 'noticed', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
      await client.request(StartVm, { vm }, { params: { hostId: 'pair-001' } });
      // inventory stands in, counting the questions and knowing no reservation: an entry step that asks is refused
      let asked = 0;
      const questions = client.handle(GetReservation, async () => {
        asked += 1;
        return { reservation: null, targetMigrationAddress: null };
      });
      cleanups.push(() => questions.unsubscribe());
      const cmdOf = (migrationId: string) => (step: number, role: 'source' | 'target') =>
        client.request(
          RunStep,
          { migrationId, step, stepName: stepName(step), attempt: 1, role, vm, sourceHostId: 'pair-001', targetHostId: 'pair-002', policy: MigrationPolicySchema.parse({}) },
          { params: { hostId: role === 'source' ? 'pair-001' : 'pair-002' } },
        );
      const notice = (migrationId: string) => ({
        migrationId,
        reservation: { migrationId, vmId: vm.id, hostId: 'pair-002', memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, createdAt: new Date().toISOString() },
        targetMigrationAddress: 'pair-002.sim:49152',
      });
      // step 1's notices, as inventory sends them: to the target and to the source (published before the commands, on one connection)
      const noticed = randomUUID();
      for (const hostId of ['pair-002', 'pair-001']) client.publish(ReservationNotice, notice(noticed), { hostId });
      const run = cmdOf(noticed);
      await run(2, 'target');
      const s3 = await run(3, 'source');
      expect(s3.stats).toMatchObject({ passes: 1 });
      expect(asked).toBe(0);
      // noticed, then released before its entry step: the target asks, inventory knows none, the step is refused
      const released = randomUUID();
      client.publish(ReservationNotice, notice(released), { hostId: 'pair-002' });
      client.publish(ReservationNotice, { migrationId: released, reservation: null, targetMigrationAddress: null }, { hostId: 'pair-002' });
      await expect(cmdOf(released)(2, 'target')).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
      expect(asked).toBe(1);
    } finally {
      await pair.stop();
    }
  });
});
