import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ErrorCode } from '@flexmig/contracts';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase } from '@flexmig/testing';
import { inventoryEntities } from '../entities';
import { inventoryMigrations } from '../migrations';
import type { CpuCompatClient } from '../cpu/cpu-compat.client';
import { VmsService } from '../vms/vms.service';
import { ReservationsService } from './reservations.service';

/**
 * Saga steps 1 and 9 as inventory stores them, against real PostgreSQL: a reservation, its repeat, another
 * migration of the same VM refused; the relocation that turns the reservation into the VM's place, its
 * repeat, and a relocation by a migration that reserved nothing. Each in as few statements as it takes
 * (reservation: the VM's lock, one read of its reservations, the host's lock, what the host holds, the
 * insert; relocation: the VM locked with the reservation, then the move and the release together).
 */
describe('reservations and relocations', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  let reservations: ReservationsService;
  let vms: VmsService;
  let vmId: string;
  const cpu = { verdict: async (baseline: string) => ({ baseline, compatible: true, missing: [], reason: 'the host has every feature' }) } as unknown as CpuCompatClient;

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
         VALUES ($1, $2, $1, 'Intel', 'test', '["sse4_2"]', 16384, 8, 'sim', '127.0.0.1:1', 'up', now(), now())`,
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
    const repeat = await reservations.reserve({ migrationId, vmId, hostId: 'rr-b' });
    expect(repeat.reservation).toEqual(first.reservation);
    await expect(reservations.reserve({ migrationId, vmId, hostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.ReservationMismatch });
    await expect(reservations.reserve({ migrationId: randomUUID(), vmId, hostId: 'rr-c' })).rejects.toMatchObject({ code: ErrorCode.MigrationActive });
    expect(await reservationsOf()).toEqual([{ migration_id: migrationId, host_id: 'rr-b' }]);

    // step 9: the VM is on the target, the reservation released, in one commit
    const moved = await vms.relocate({ migrationId, vmId, fromHostId: 'rr-a', toHostId: 'rr-b' });
    expect(moved).toMatchObject({ id: vmId, hostId: 'rr-b', state: 'running' });
    expect(new Date(moved.updatedAt).getTime()).toBeGreaterThanOrEqual(new Date(moved.createdAt).getTime());
    expect(await reservationsOf()).toEqual([]);
    // a repeat (its reply was lost): the VM as it is
    expect(await vms.relocate({ migrationId, vmId, fromHostId: 'rr-a', toHostId: 'rr-b' })).toEqual(moved);
    // the VM as a migration request reads it next (GetVm): where step 9 left it, as the list shows it
    const read = await vms.get(vmId);
    expect(read).toEqual(moved);
    expect((await vms.page({ limit: 10 })).items).toEqual([read]);
    await expect(vms.get(randomUUID())).rejects.toMatchObject({ code: ErrorCode.NotFound });
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
});
