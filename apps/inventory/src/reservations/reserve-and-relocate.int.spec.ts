import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CpuVerdict, ErrorCode, type Verdict } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase, waitFor } from '@flexmig/testing';
import { inventoryEntities } from '../entities';
import { inventoryMigrations } from '../migrations';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { VmsService } from '../vms/vms.service';
import { ReservationsService } from './reservations.service';

/**
 * Saga steps 1 and 9 as inventory stores them, against real PostgreSQL: a reservation, its repeat, another
 * migration of the same VM refused; the relocation that turns the reservation into the VM's place, its
 * repeat, and a relocation by a migration that reserved nothing. Each in as few statements as it takes
 * (reservation: the VM's lock; its reservations with the host's lock; the insert where what the host holds
 * leaves room; relocation: the VM locked with the reservation, then the move and the release together).
 * And the reservation's refusals: no room (also for two reservations let go at once from the host's
 * lock, the second seeing the first), a host down or in maintenance.
 */
describe('reservations and relocations', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  let reservations: ReservationsService;
  let vms: VmsService;
  let vmId: string;
  // cpu-compat as a bus that counts its questions: a host with avx512f is one it refuses a VM on
  const asked: { baseline: string; features: string[] }[] = [];
  const bus = {
    request: async (contract: unknown, q: { baseline: string; target: { features: string[] } }): Promise<Verdict> => {
      if (contract !== CpuVerdict) throw new Error('only verdicts are asked here');
      asked.push({ baseline: q.baseline, features: q.target.features });
      const refused = q.target.features.includes('avx512f');
      return { baseline: q.baseline, compatible: !refused, missing: refused ? ['avx512bw'] : [], vendorMismatch: false, unchecked: [], reason: refused ? 'missing avx512bw' : 'the host has every feature' };
    },
  } as unknown as NatsBus;
  const cpu = new CpuCompatClient(bus);

  beforeAll(async () => {
    db = await startTestDatabase('reserve-relocate');
    await ensureDatabaseAndSchema(db.url, 'inventory');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations, poolSize: 4 }));
    reservations = new ReservationsService(ds, cpu);
    // relocate reads and writes PostgreSQL only
    vms = new VmsService(ds, undefined as never, cpu, undefined as never, undefined as never, undefined as never);
    const [{ id: clusterId }] = await ds.query(`INSERT INTO clusters (name) VALUES ('rr') RETURNING id`);
    for (const host of ['rr-a', 'rr-b', 'rr-c']) {
      await ds.query(
        `INSERT INTO hosts (id, cluster_id, hostname, cpu_vendor, cpu_model_name, cpu_features, memory_mib, vcpus, driver, migration_address, state, last_heartbeat_at, registered_at)
         VALUES ($1, $2, $1, 'Intel', 'test', '["sse4_2"]', 16384, 8, 'sim', $1 || '.example:49152', 'up', now(), now())`,
        [host, clusterId],
      );
    }
    vmId = randomUUID();
    await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, 'rr-vm', $2, 'rr-a', 4096, 2, 'Haswell', 'running')`, [vmId, clusterId]);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  const reservationsOf = async () => ds.query('SELECT migration_id, host_id FROM reservations WHERE vm_id = $1', [vmId]);

  it('given a reservation, its repeat and another migration of the VM, then one reservation, the same twice, and the other refused', async () => {
    const migrationId = randomUUID();
    const first = await reservations.reserve({ migrationId, vmId, hostId: 'rr-b' });
    expect(first.reservation).toMatchObject({ migrationId, vmId, hostId: 'rr-b', memoryMiB: 4096, vcpus: 2 });
    expect(new Date(first.reservation.createdAt).getTime()).toBeGreaterThan(0);
    // what inventory tells the migration's two agents (ReservationNotice): the source, and where it may stream
    expect(first).toMatchObject({ sourceHostId: 'rr-a', targetMigrationAddress: 'rr-b.example:49152' });
    const repeat = await reservations.reserve({ migrationId, vmId, hostId: 'rr-b' });
    expect(repeat.reservation).toEqual(first.reservation);
    expect(repeat).toMatchObject({ sourceHostId: 'rr-a', targetMigrationAddress: 'rr-b.example:49152' });
    await expect(reservations.reserve({ migrationId, vmId, hostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.ReservationMismatch });
    await expect(reservations.reserve({ migrationId: randomUUID(), vmId, hostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.MigrationActive });
    expect(await reservationsOf()).toEqual([{ migration_id: migrationId, host_id: 'rr-b' }]);
    // what the agents check before they take part: the reservation, and where the source may send memory
    expect(await reservations.get(migrationId)).toEqual({ reservation: first.reservation, targetMigrationAddress: 'rr-b.example:49152' });

    // step 9: the VM is on the target, the reservation released, in one commit
    const moved = await vms.relocate({ migrationId, vmId, fromHostId: 'rr-a', toHostId: 'rr-b' });
    expect(moved).toMatchObject({ id: vmId, hostId: 'rr-b', state: 'running' });
    expect(new Date(moved.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(moved.createdAt).getTime());
    expect(await reservationsOf()).toEqual([]);
    expect(await reservations.get(migrationId)).toEqual({ reservation: null, targetMigrationAddress: null });
    // a repeat (its reply was lost): the VM as it is
    expect(await vms.relocate({ migrationId, vmId, fromHostId: 'rr-a', toHostId: 'rr-b' })).toEqual(moved);
    // the VM as a migration request reads it next (GetVm): where step 9 left it, as the list shows it
    const read = await vms.get(vmId);
    expect(read).toEqual(moved);
    expect((await vms.page({ limit: 10 })).items).toEqual([read]);
    await expect(vms.get(randomUUID())).rejects.toMatchObject({ code: ErrorCode.NotFound });
  });

  it('given a release (step 1 compensated), then the reservation is gone and the release names its two hosts, once', async () => {
    const migrationId = randomUUID();
    await reservations.reserve({ migrationId, vmId, hostId: 'rr-c' });
    expect(await reservations.release(migrationId)).toEqual({ released: true, hostIds: ['rr-c', 'rr-b'] });
    expect(await reservationsOf()).toEqual([]);
    expect(await reservations.release(migrationId)).toEqual({ released: false, hostIds: [] });
  });

  it('given a relocation by a migration that reserved nothing, then RESERVATION_MISMATCH and the VM stays where it is', async () => {
    const migrationId = randomUUID();
    await expect(vms.relocate({ migrationId, vmId, fromHostId: 'rr-b', toHostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.ReservationMismatch });
    expect(await ds.query('SELECT host_id FROM vms WHERE id = $1', [vmId])).toEqual([{ host_id: 'rr-b' }]);
  });

  it('given a relocation that names the wrong source, then CONFLICT and the reservation is kept', async () => {
    const migrationId = randomUUID();
    await reservations.reserve({ migrationId, vmId, hostId: 'rr-c' });
    await expect(vms.relocate({ migrationId, vmId, fromHostId: 'rr-a', toHostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.Conflict });
    expect(await reservationsOf()).toEqual([{ migration_id: migrationId, host_id: 'rr-c' }]);
    expect(await ds.query('SELECT host_id FROM vms WHERE id = $1', [vmId])).toEqual([{ host_id: 'rr-b' }]);
  });

  describe('room, and the hosts that take none', () => {
    let cluster: string;
    const host = (id: string, memoryMiB: number, state = 'up', maintenance = false) =>
      ds.query(
        `INSERT INTO hosts (id, cluster_id, hostname, cpu_vendor, cpu_model_name, cpu_features, memory_mib, vcpus, driver, migration_address, state, maintenance, last_heartbeat_at, registered_at)
         VALUES ($1, $2, $1, 'Intel', 'test', '["sse4_2"]', $3, 8, 'sim', '127.0.0.1:1', $4, $5, now(), now())`,
        [id, cluster, memoryMiB, state, maintenance],
      );
    const vm = async (name: string, memoryMiB: number): Promise<string> => {
      const id = randomUUID();
      await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, $2, $3, 'room-src', $4, 1, 'Haswell', 'running')`, [id, name, cluster, memoryMiB]);
      return id;
    };
    const heldOn = async (hostId: string) => (await ds.query('SELECT memory_mib FROM host_allocations WHERE host_id = $1', [hostId]))[0]?.memory_mib ?? 0;

    beforeAll(async () => {
      [{ id: cluster }] = await ds.query(`INSERT INTO clusters (name) VALUES ('room') RETURNING id`);
      await host('room-src', 65_536);
      await host('room-t', 16_384);
      await host('room-down', 16_384, 'down');
      await host('room-maint', 16_384, 'up', true);
    });

    it('given a VM larger than the room left, then INSUFFICIENT_CAPACITY with what is free, and nothing held', async () => {
      const big = await vm('room-big', 20_480);
      await expect(reservations.reserve({ migrationId: randomUUID(), vmId: big, hostId: 'room-t' })).rejects.toMatchObject({
        code: ErrorCode.InsufficientCapacity,
        details: { hostId: 'room-t', need: { memoryMiB: 20_480, vcpus: 1 }, free: { memoryMiB: 16_384, vcpus: 32 } },
      });
      expect(await ds.query('SELECT count(*)::int AS n FROM reservations WHERE vm_id = $1', [big])).toEqual([{ n: 0 }]);
      expect(await heldOn('room-t')).toBe(0);
    });

    it("given two reservations that wait together for the host's lock and only one fits, then the second sees the first's: one held, one refused", async () => {
      const [v1, v2] = [await vm('room-1', 10_240), await vm('room-2', 10_240)];
      // hold the host's row lock, as a VM creation on it would, until both reservations wait for it
      const holder = ds.createQueryRunner();
      await holder.connect();
      await holder.startTransaction();
      try {
        await holder.query(`SELECT id FROM hosts WHERE id = 'room-t' FOR UPDATE`);
        const racing = [v1, v2].map((vmId) => reservations.reserve({ migrationId: randomUUID(), vmId, hostId: 'room-t' }));
        racing.forEach((p) => p.catch(() => undefined)); // settled below
        await waitFor('both reservations waiting for the host', async () => {
          const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
          return n >= 2 || undefined;
        });
        await holder.commitTransaction();
        const settled = await Promise.allSettled(racing);
        expect(settled.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
        const refused = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
        expect(refused?.reason).toMatchObject({ code: ErrorCode.InsufficientCapacity, details: { free: { memoryMiB: 16_384 - 10_240 } } });
      } finally {
        if (holder.isTransactionActive) await holder.rollbackTransaction();
        await holder.release();
      }
      expect(await heldOn('room-t')).toBe(10_240);
    });

    it('given a host down or in maintenance, then HOST_DOWN or HOST_IN_MAINTENANCE, and nothing held', async () => {
      const v = await vm('room-3', 1_024);
      await expect(reservations.reserve({ migrationId: randomUUID(), vmId: v, hostId: 'room-down' })).rejects.toMatchObject({ code: ErrorCode.HostDown });
      await expect(reservations.reserve({ migrationId: randomUUID(), vmId: v, hostId: 'room-maint' })).rejects.toMatchObject({ code: ErrorCode.HostInMaintenance });
      expect(await ds.query('SELECT count(*)::int AS n FROM reservations WHERE vm_id = $1', [v])).toEqual([{ n: 0 }]);
    });

    it('given a repeat of a reservation whose host has gone into maintenance since, then the reservation as it was', async () => {
      const v = await vm('room-4', 1_024);
      const migrationId = randomUUID();
      const first = await reservations.reserve({ migrationId, vmId: v, hostId: 'room-t' });
      await ds.query(`UPDATE hosts SET maintenance = true WHERE id = 'room-t'`);
      try {
        expect((await reservations.reserve({ migrationId, vmId: v, hostId: 'room-t' })).reservation).toEqual(first.reservation);
      } finally {
        await ds.query(`UPDATE hosts SET maintenance = false WHERE id = 'room-t'`);
      }
    });
  });

  describe("cpu-compat's verdict, kept a minute by the client", () => {
    let cluster: string;
    const vm = async (name: string): Promise<string> => {
      const id = randomUUID();
      await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, $2, $3, 'kv-src', 512, 1, 'Haswell', 'running')`, [id, name, cluster]);
      return id;
    };
    const features = (hostId: string, list: string[]) => ds.query('UPDATE hosts SET cpu_features = $2 WHERE id = $1', [hostId, JSON.stringify(list)]);

    beforeAll(async () => {
      [{ id: cluster }] = await ds.query(`INSERT INTO clusters (name) VALUES ('kept-verdicts') RETURNING id`);
      for (const id of ['kv-src', 'kv-t']) {
        await ds.query(
          `INSERT INTO hosts (id, cluster_id, hostname, cpu_vendor, cpu_model_name, cpu_features, memory_mib, vcpus, driver, migration_address, state, last_heartbeat_at, registered_at)
           VALUES ($1, $2, $1, 'Intel', 'test', '["avx2","sse4_2"]', 65536, 64, 'sim', '127.0.0.1:1', 'up', now(), now())`,
          [id, cluster],
        );
      }
    });

    afterEach(() => jest.restoreAllMocks());

    it('given the same baseline on the same CPU, then cpu-compat is asked once; another CPU is asked about, and a refusal stays one', async () => {
      asked.length = 0;
      // the path that asks (reads, the verdict with no transaction open, then the reservation's transaction)
      // is taken only without a kept answer: the others reserve in the one transaction that locks
      const askingPath = jest.spyOn(cpu, 'verdict');
      const reserved = [];
      for (const name of ['kv-1', 'kv-2', 'kv-3']) reserved.push(await reservations.reserve({ migrationId: randomUUID(), vmId: await vm(name), hostId: 'kv-t' }));
      expect(asked).toEqual([{ baseline: 'Haswell', features: ['avx2', 'sse4_2'] }]);
      expect(askingPath).toHaveBeenCalledTimes(1);
      expect(reserved.map((r) => [r.reservation.hostId, r.verdict.compatible])).toEqual([['kv-t', true], ['kv-t', true], ['kv-t', true]]);
      expect(await ds.query(`SELECT count(*)::int AS n FROM reservations WHERE host_id = 'kv-t'`)).toEqual([{ n: 3 }]);

      // the target re-registered with another CPU: another question, and its answer refuses, twice, asked once
      await features('kv-t', ['avx2', 'avx512f', 'sse4_2']);
      for (const name of ['kv-4', 'kv-5']) {
        await expect(reservations.reserve({ migrationId: randomUUID(), vmId: await vm(name), hostId: 'kv-t' })).rejects.toMatchObject({
          code: ErrorCode.CpuIncompatible,
          details: { missing: ['avx512bw'] },
        });
      }
      expect(asked).toHaveLength(2);
      expect(asked[1]).toEqual({ baseline: 'Haswell', features: ['avx2', 'avx512f', 'sse4_2'] });
      expect(askingPath).toHaveBeenCalledTimes(3); // a refusal is always the asking path's, from the kept answer
      expect(await ds.query(`SELECT count(*)::int AS n FROM reservations WHERE host_id = 'kv-t'`)).toEqual([{ n: 3 }]);

      // back to the first CPU: its answer is still kept, and a repeat of a reservation answers it without asking
      await features('kv-t', ['avx2', 'sse4_2']);
      const again = await reservations.reserve({ migrationId: reserved[0]!.reservation.migrationId, vmId: reserved[0]!.reservation.vmId, hostId: 'kv-t' });
      expect(again).toEqual(reserved[0]);
      expect(asked).toHaveLength(2);
      expect(askingPath).toHaveBeenCalledTimes(3);
    });
  });
});
