import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { keysetPageSql, prepared, preparedText, runPrepared } from '@flexmig/persistence';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CreateVm, ErrorCode, type Page, type PageQuery, FlexmigError, HOST_PASSTHROUGH_BASELINE, type HostCpu, IMC_OFF, StartVm, VendorSchema, Vm, VmStarted } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { ClusterEntity, VmEntity } from '../entities';
import { vmView } from '../views';
import { hostDown, hostNotFound, vmNotFound } from '../errors';
import { CpuCompatClient } from '../cpu/cpu-compat.client';
import { ClusterCpuPlans, type StoredPlan } from '../clusters/cluster-cpu-plans';
import { checkInserted, type HeldByInsert, insertIfRoomSql, lockHostToFill } from '../capacity';
import { checkRelocationReserved } from '../reservations/reservation-checks';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';
import { EventOutbox, OUTBOX_COLUMNS, outboxEvent, outboxValues } from '../events/event-outbox';

@Injectable()
export class VmsService {
  private readonly log = new Logger(VmsService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly cpu: CpuCompatClient,
    private readonly plans: ClusterCpuPlans,
    private readonly events: EventOutbox,
    @Inject(INVENTORY_CONFIG) private readonly config: InventoryConfig,
  ) {}

  /**
   * Creates a VM and starts it on its host through the host's agent; returns once it runs.
   * Every check happens before anything is written; if the agent cannot start it, the record is removed.
   *
   * No transaction is held across a NATS request (docs/reconciliation.md, "No pool starvation"): the baseline is chosen with
   * cpu-compat first; then one short transaction re-reads the cluster's mode under its share lock, checks
   * the host's room under its row lock and records the VM, or starts over when the mode changed.
   */
  async create(input: CreateVm): Promise<Vm> {
    // the host with its cluster and the cluster's stored CPU plan, in one statement
    const [found] = await runPrepared<HostWithClusterRow>(this.db, HOST_WITH_CLUSTER, [input.hostId]);
    if (!found) throw hostNotFound(input.hostId);
    if (found.state !== 'up') throw hostDown(found.id);
    const host: HostToStartOn = { id: found.id, cpu: { vendor: VendorSchema.parse(found.cpu_vendor), modelName: found.cpu_model_name, features: found.cpu_features } };
    const id = randomUUID();
    let cluster: ClusterToStartIn = { id: found.cluster_id, name: found.cluster_name, imcMode: found.imc_mode };
    let cpuBaseline: string | undefined;
    // the plan as read with the host, for the first choice only: a retry reads the cluster anew
    let storedPlan: StoredPlan | null | undefined = planOf(found);
    for (let attempt = 1; cpuBaseline === undefined; attempt++) {
      const chosen = await this.baselineFor(host, input.cpuBaseline, cluster, storedPlan);
      storedPlan = undefined;
      const modeChosenFor = cluster.imcMode;
      const changed = await this.db.transaction(async (m): Promise<string | null | undefined> => {
        // the host's row lock and the cluster's share lock in one statement: a mode change (which locks the
        // cluster for update) cannot slip in between this check and the commit and leave a VM above its mode
        const locked = await lockHostToFill(m, host.id, { shareCluster: true });
        if (locked.clusterImcMode !== modeChosenFor) return locked.clusterImcMode;
        // host passthrough: the VM sees this host's CPU, so it records its features (it may only move to an identical host)
        const cpuFeatures = chosen === HOST_PASSTHROUGH_BASELINE ? JSON.stringify([...locked.cpuFeatures].sort()) : null;
        // what the host holds is read by the insert, begun after the lock was granted: inserted only where the VM fits
        const [placed] = await runPrepared<HeldByInsert & { inserted: boolean }>(m, INSERT_STARTING_VM_IF_ROOM, [
          id,
          input.name,
          locked.clusterId,
          host.id,
          input.memoryMiB,
          input.vcpus,
          chosen,
          cpuFeatures,
          locked.capacity.memoryMiB,
          locked.capacity.vcpus,
        ]);
        checkInserted(locked, input, placed, (p) => p.inserted, `VM ${input.name}`);
        return undefined;
      });
      if (changed === undefined) cpuBaseline = chosen;
      else if (attempt >= 5) {
        throw new FlexmigError(ErrorCode.Conflict, `the CPU mode of cluster ${cluster.name} kept changing while VM ${input.name} was created: try again`, { clusterId: cluster.id }, true);
      } else cluster = { ...cluster, imcMode: changed };
    }
    try {
      await this.bus.request(
        StartVm,
        { vm: { id, name: input.name, memoryMiB: input.memoryMiB, vcpus: input.vcpus, cpuBaseline } },
        { params: { hostId: host.id }, timeoutMs: this.config.vmStartTimeoutMs },
      );
    } catch (e) {
      await this.db.getRepository(VmEntity).delete({ id });
      const why = (e as Error).message;
      throw new FlexmigError(
        (e as FlexmigError).code === ErrorCode.Unavailable ? ErrorCode.Unavailable : ErrorCode.AgentFailed,
        `the agent of host ${host.id} could not start VM ${input.name}: ${why}`,
        { hostId: host.id },
      );
    }
    // running, its vm.started event and the VM as stored, in one statement
    const started = outboxEvent(VmStarted, { vmId: id, hostId: host.id, cpuBaseline }, { id: `${id}:started`, subject: id });
    const [running] = await runPrepared<VmRow>(this.db, VM_RUNNING, [id, ...outboxValues(started)]);
    if (!running) throw vmNotFound(id);
    void this.events.committed();
    this.log.log(`VM ${input.name} (${id}) runs on ${host.id} with CPU baseline ${cpuBaseline}`);
    return vmView(vmEntityOf(running));
  }

  /**
   * The baseline a new VM gets: the one asked for (which the host must support), else the cluster's
   * IMC mode, else the highest mode every host of the cluster passes, so the VM can move to any of them
   * (the cluster's cached plan: the same cost at 1,000 hosts as at 20).
   */
  private async baselineFor(host: HostToStartOn, asked: string | undefined, cluster: ClusterToStartIn, storedPlan?: StoredPlan | null): Promise<string> {
    const { cpu } = host;
    if (asked?.trim().toLowerCase() === HOST_PASSTHROUGH_BASELINE) return HOST_PASSTHROUGH_BASELINE;
    if (asked) {
      const verdict = await this.cpu.verdict(asked, cpu);
      if (!verdict.compatible) {
        throw new FlexmigError(ErrorCode.CpuIncompatible, `host ${host.id} cannot run CPU baseline ${verdict.baseline}: ${verdict.reason}`, {
          hostId: host.id,
          baseline: verdict.baseline,
          missing: verdict.missing,
        });
      }
      return verdict.baseline;
    }
    if (cluster.imcMode === IMC_OFF) return HOST_PASSTHROUGH_BASELINE;
    if (cluster.imcMode) return cluster.imcMode;
    const plan = await this.plans.get(cluster.id, storedPlan);
    if (!plan.mode) {
      throw new FlexmigError(ErrorCode.CpuIncompatible, `cluster ${cluster.name} has no CPU baseline common to its hosts: ${plan.reason}`, {
        clusterId: cluster.id,
      });
    }
    return plan.mode;
  }

  /** One VM: every migration request reads it (GetVm), so one prepared statement, without TypeORM's builder and hydration. */
  async get(id: string): Promise<Vm> {
    const [row] = await runPrepared<VmRow>(this.db, VM_BY_ID, [id]);
    if (!row) throw vmNotFound(id);
    return vmView(vmEntityOf(row));
  }

  /**
   * A page of VMs, oldest first (created_at, id), with the filters kept: one statement, without TypeORM's
   * hydration. Of one host, one cluster or one name, each an index in that order (entities.ts).
   */
  async page(q: { hostId?: string; clusterId?: string; name?: string } & PageQuery): Promise<Page<Vm>> {
    const { rows, nextCursor } = await keysetPageSql<VmRow>(this.db.manager, {
      table: 'vms',
      alias: 'v',
      keys: ['created_at', 'id'],
      idColumn: 'id',
      filters: { host_id: q.hostId, cluster_id: q.clusterId, name: q.name },
      page: q,
      idOf: (r) => r.id,
      // a handful of texts (filters given or not, a cursor or not): each prepared
      select: (condition, params) => runPrepared<VmRow>(this.db, preparedText(`SELECT ${VM_COLUMNS} FROM vms v WHERE ${condition}`), params),
    });
    return { items: rows.map((r) => vmView(vmEntityOf(r))), nextCursor };
  }

  async list(filter: { hostId?: string; clusterId?: string }): Promise<Vm[]> {
    const where: { hostId?: string; clusterId?: string } = {};
    if (filter.hostId) where.hostId = filter.hostId;
    if (filter.clusterId) where.clusterId = filter.clusterId;
    return (await this.db.getRepository(VmEntity).find({ where, order: { createdAt: 'ASC' } })).map(vmView);
  }

  /**
   * Saga step 9: the VM runs on the target now; its reservation becomes its allocation.
   * Idempotent: a repeat after success returns the VM as it is.
   *
   * Two statements in one transaction: the VM locked with the migration's reservation (one read), then the
   * move and the reservation's deletion together, returning the VM as stored, after it has locked both hosts
   * in a fixed order (`MOVE_VM_AND_RELEASE`: no deadlock with a crossing move or a VM creation).
   */
  async relocate(r: { migrationId: string; vmId: string; fromHostId: string; toHostId: string }): Promise<Vm> {
    const moved = await this.db.transaction(async (m): Promise<VmRow> => {
      const [found] = await runPrepared<VmRow & { res_migration_id: string | null; res_vm_id: string | null; res_host_id: string | null }>(m, VM_WITH_RESERVATION_LOCKED, [r.vmId, r.migrationId]);
      if (!found) throw vmNotFound(r.vmId);
      const reservation = found.res_migration_id ? { migrationId: found.res_migration_id, vmId: found.res_vm_id!, hostId: found.res_host_id! } : null;
      if (found.host_id === r.toHostId) {
        // a repeat of a committed relocation (the reservation is gone), or one whose reply was lost
        if (reservation) {
          checkRelocationReserved(reservation, r);
          await m.query('DELETE FROM reservations WHERE migration_id = $1', [r.migrationId]);
        }
        return found;
      }
      checkRelocationReserved(reservation, r);
      if (found.host_id !== r.fromHostId) {
        throw new FlexmigError(ErrorCode.Conflict, `VM ${r.vmId} is on ${found.host_id}, not on ${r.fromHostId} as migration ${r.migrationId} says`, {
          vmId: r.vmId,
          hostId: found.host_id,
        });
      }
      const [row] = await runPrepared<VmRow>(m, MOVE_VM_AND_RELEASE, [r.vmId, r.toHostId, r.migrationId, r.fromHostId]);
      return row!;
    });
    return vmView(vmEntityOf(moved));
  }
}

/** VM creation's first read: the host with its cluster and the cluster's stored CPU plan (`plan_generation` null: none stored). */
interface HostWithClusterRow {
  id: string;
  state: string;
  cpu_vendor: string;
  cpu_model_name: string;
  cpu_features: string[];
  cluster_id: string;
  cluster_name: string;
  imc_mode: string | null;
  plan_generation: string | null;
  plan_planned_generation: string | null;
  plan_mode: string | null;
  plan_reason: string | null;
}

/** The stored plan a HostWithClusterRow carries; null: the cluster has none stored. */
function planOf(r: HostWithClusterRow): StoredPlan | null {
  return r.plan_generation === null ? null : { generation: r.plan_generation, planned_generation: r.plan_planned_generation, mode: r.plan_mode, reason: r.plan_reason };
}
interface HostToStartOn {
  id: string;
  cpu: HostCpu;
}
type ClusterToStartIn = Pick<ClusterEntity, 'id' | 'name' | 'imcMode'>;

/** The columns of `vms`, as `VmRow` names them. */
const VM_COLUMNS = ['id', 'name', 'cluster_id', 'host_id', 'memory_mib', 'vcpus', 'cpu_baseline', 'cpu_features', 'state', 'created_at', 'updated_at'].map((c) => `v.${c}`).join(', ');

/** A row of `vms` as a plain statement gives it. */
interface VmRow {
  id: string;
  name: string;
  cluster_id: string;
  host_id: string;
  memory_mib: number;
  vcpus: number;
  cpu_baseline: string;
  cpu_features: string[] | null;
  state: VmEntity['state'];
  created_at: Date;
  updated_at: Date;
}

// the statements of VM creation (the host with its cluster and plan, the insert where the VM fits, the VM running; the host's lock
// is capacity.ts's), of a migration's admission and of saga step 9, prepared:
// parsed and planned once per connection
const VM_BY_ID = prepared('inventory_vm_by_id', `SELECT ${VM_COLUMNS} FROM vms v WHERE v.id = $1`);
const HOST_WITH_CLUSTER = prepared(
  'inventory_host_with_cluster',
  `SELECT h.id, h.state, h.cpu_vendor, h.cpu_model_name, h.cpu_features, c.id AS cluster_id, c.name AS cluster_name, c.imc_mode,
     p.generation AS plan_generation, p.planned_generation AS plan_planned_generation, p.mode AS plan_mode, p.reason AS plan_reason
   FROM hosts h JOIN clusters c ON c.id = h.cluster_id LEFT JOIN cluster_cpu_plans p ON p.cluster_id = c.id WHERE h.id = $1`,
);
/**
 * The VM, starting ($1–$8), inserted only where it fits beside what its host holds now (`host_allocations`)
 * under the host's capacity ($9 MiB, $10 vCPUs: whole numbers, hostCapacity); the row always comes back,
 * with what the host held and whether the VM was inserted.
 */
const INSERT_STARTING_VM_IF_ROOM = prepared(
  'inventory_insert_starting_vm_if_room',
  `${insertIfRoomSql({
    insert: 'INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, cpu_features, state)',
    values: "$1::uuid, $2::text, $3::uuid, $4::text, $5::int, $6::int, $7::text, $8::jsonb, 'starting'",
    host: '$4', need: { memoryMiB: '$5', vcpus: '$6' }, capacity: { memoryMiB: '$9', vcpus: '$10' }, returning: 'id',
  })}
   SELECT held.memory_mib AS held_memory, held.vcpus AS held_vcpus, EXISTS (SELECT 1 FROM ins) AS inserted FROM held`,
);
/** The VM running, with its vm.started event ($2–$7, `outboxValues`) written by the same statement. */
const VM_RUNNING = prepared(
  'inventory_vm_running',
  `WITH running AS (UPDATE vms v SET state = 'running', updated_at = now() WHERE id = $1 RETURNING ${VM_COLUMNS}),
   started AS (INSERT INTO ${OUTBOX_COLUMNS} SELECT $2, $3, $4, $5::jsonb, $6, $7 FROM running ON CONFLICT (event_id) DO NOTHING)
   SELECT * FROM running`,
);
const VM_WITH_RESERVATION_LOCKED = prepared(
  'inventory_vm_with_reservation_locked',
  `SELECT ${VM_COLUMNS}, res.migration_id AS res_migration_id, res.vm_id AS res_vm_id, res.host_id AS res_host_id
   FROM vms v LEFT JOIN reservations res ON res.migration_id = $2 WHERE v.id = $1 FOR UPDATE OF v`,
);
/**
 * Step 9's move. First (`locked`: the update reads it before it writes its row) both hosts' rows and then
 * their allocation counters, each in id order (migration 1764600000000-host-allocations): the foreign key
 * check and the two tables' triggers, which run at the statement's end, then find them held, so no two
 * moves and no VM creation take them in opposite orders.
 */
const MOVE_VM_AND_RELEASE = prepared(
  'inventory_move_vm_and_release',
  `WITH locked AS MATERIALIZED (SELECT host_allocations_lock_for_move(ARRAY[$4::text, $2::text])),
   released AS (DELETE FROM reservations WHERE migration_id = $3)
   UPDATE vms v SET host_id = $2, state = 'running', updated_at = now() FROM locked WHERE v.id = $1 RETURNING ${VM_COLUMNS}`,
);

const vmEntityOf = (r: VmRow): VmEntity => ({
  id: r.id,
  name: r.name,
  clusterId: r.cluster_id,
  hostId: r.host_id,
  memoryMiB: r.memory_mib,
  vcpus: r.vcpus,
  cpuBaseline: r.cpu_baseline,
  cpuFeatures: r.cpu_features,
  state: r.state,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
