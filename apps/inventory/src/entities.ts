import type { AgentVmState, ReconciliationKind, ReportedVm } from '@flexmig/contracts';
import { DEFAULT_CPU_ALLOCATION_RATIO, DEFAULT_MEMORY_ALLOCATION_RATIO } from '@flexmig/contracts';
import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

// Inventory's tables, all in its own `inventory` schema (set on the data source).

@Entity({ name: 'clusters' })
export class ClusterEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Index({ unique: true }) @Column('text') name: string;
  @Column('text', { name: 'imc_mode', nullable: true }) imcMode: string | null;
  @Column('double precision', { name: 'cpu_allocation_ratio', default: DEFAULT_CPU_ALLOCATION_RATIO }) cpuAllocationRatio: number;
  @Column('double precision', { name: 'memory_allocation_ratio', default: DEFAULT_MEMORY_ALLOCATION_RATIO }) memoryAllocationRatio: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}

// the indexes as the migrations make them (the schema is the migrations'; these only document it)
@Entity({ name: 'hosts' })
@Index('hosts_cluster_by_id', ['clusterId', 'id'])
export class HostEntity {
  @PrimaryColumn('text') id: string;
  @Column('uuid', { name: 'cluster_id' }) clusterId: string;
  @Column('text') hostname: string;
  @Column('text', { name: 'cpu_vendor' }) cpuVendor: string;
  @Column('text', { name: 'cpu_model_name' }) cpuModelName: string;
  @Column('jsonb', { name: 'cpu_features' }) cpuFeatures: string[];
  @Column('text', { name: 'max_imc_mode', nullable: true }) maxImcMode: string | null;
  @Column('int', { name: 'memory_mib' }) memoryMiB: number;
  @Column('int') vcpus: number;
  @Column('text') driver: string;
  @Column('text', { name: 'migration_address' }) migrationAddress: string;
  @Column('text') state: 'up' | 'down';
  @Column('boolean', { default: false }) maintenance: boolean;
  @Column('timestamptz', { name: 'last_heartbeat_at' }) lastHeartbeatAt: Date;
  @Column('timestamptz', { name: 'registered_at' }) registeredAt: Date;
  /** The agent process that owns the host (HostOwnedByAnotherAgent refuses others while it heartbeats). */
  @Column('text', { name: 'agent_instance_id', nullable: true }) agentInstanceId: string | null;
  /** The digest of the VM set the last heartbeat carried. */
  @Column('text', { name: 'vm_digest', nullable: true }) vmDigest: string | null;
  /**
   * The VM set the agent last sent in full, its digest, and when it was last known current (digest = vm_digest).
   * Not read with the entity (`select: false`): only reconciliation reads the set, with its own query, and a
   * page of 1,000 hosts would otherwise parse 1,000 VM lists it does not show.
   */
  @Column('jsonb', { name: 'reported_vms', nullable: true, select: false }) reportedVms: ReportedVm[] | null;
  @Column('text', { name: 'reported_digest', nullable: true }) reportedDigest: string | null;
  @Column('timestamptz', { name: 'reported_at', nullable: true }) reportedAt: Date | null;
  // cpu_feature_set (md5 of cpu_features, kept by a trigger of PostgreSQL's) is not mapped: only the list statements read it
}

@Entity({ name: 'vms' })
@Index('vms_by_age', ['createdAt', 'id'])
@Index('vms_cluster_by_age', ['clusterId', 'createdAt', 'id'])
@Index('vms_host_by_age', ['hostId', 'createdAt', 'id'])
@Index('vms_name_by_age', ['name', 'createdAt', 'id'])
export class VmEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  @Column('uuid', { name: 'cluster_id' }) clusterId: string;
  @Column('text', { name: 'host_id' }) hostId: string;
  @Column('int', { name: 'memory_mib' }) memoryMiB: number;
  @Column('int') vcpus: number;
  @Column('text', { name: 'cpu_baseline' }) cpuBaseline: string;
  /** Baseline `host-passthrough` only: the features of the host it started on. */
  @Column('jsonb', { name: 'cpu_features', nullable: true }) cpuFeatures: string[] | null;
  @Column('text') state: 'starting' | 'running' | 'stopped' | 'error';
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
}

/** Capacity held on a target host for an incoming migration (saga step 1) until commit or release. */
@Entity({ name: 'reservations' })
export class ReservationEntity {
  @PrimaryColumn('uuid', { name: 'migration_id' }) migrationId: string;
  @Index() @Column('uuid', { name: 'vm_id' }) vmId: string;
  @Index() @Column('text', { name: 'host_id' }) hostId: string;
  @Column('int', { name: 'memory_mib' }) memoryMiB: number;
  @Column('int') vcpus: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}

/** One disagreement between inventory and the agents, as the last reconciliation pass saw it. */
@Entity({ name: 'reconciliation_findings' })
export class FindingEntity {
  @PrimaryColumn('text') kind: ReconciliationKind;
  @PrimaryColumn('uuid', { name: 'vm_id' }) vmId: string;
  @PrimaryColumn('text', { name: 'host_id' }) hostId: string;
  @Column('jsonb', { name: 'other_host_ids' }) otherHostIds: string[];
  @Column('text', { name: 'agent_state', nullable: true }) agentState: AgentVmState | null;
  @Column('text', { name: 'recorded_host_id', nullable: true }) recordedHostId: string | null;
  @Column('text', { name: 'recorded_state', nullable: true }) recordedState: string | null;
  @Column('jsonb', { name: 'paused_host_ids' }) pausedHostIds: string[];
  @Column('text') detail: string;
  @Column('timestamptz', { name: 'first_seen_at' }) firstSeenAt: Date;
  @Column('timestamptz', { name: 'last_seen_at' }) lastSeenAt: Date;
}

export const inventoryEntities = [ClusterEntity, HostEntity, VmEntity, ReservationEntity, FindingEntity];
