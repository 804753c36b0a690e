import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

// Inventory's tables, all in its own `inventory` schema (set on the data source).

@Entity({ name: 'clusters' })
export class ClusterEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Index({ unique: true }) @Column('text') name: string;
  @Column('text', { name: 'imc_mode', nullable: true }) imcMode: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}

@Entity({ name: 'hosts' })
export class HostEntity {
  @PrimaryColumn('text') id: string;
  @Index() @Column('uuid', { name: 'cluster_id' }) clusterId: string;
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
}

@Entity({ name: 'vms' })
export class VmEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  @Index() @Column('uuid', { name: 'cluster_id' }) clusterId: string;
  @Index() @Column('text', { name: 'host_id' }) hostId: string;
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

export const inventoryEntities = [ClusterEntity, HostEntity, VmEntity, ReservationEntity];
