import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import type { MigrationPlacement, MigrationPolicy, MigrationPrediction, VmSpec } from '@flexmig/contracts';
import type { SagaState } from '@flexmig/saga';
import type { MeasuredFigures } from './prediction/measured';
import { EvacuationEntity } from './evacuations/evacuation.entity';
import { MigrationResolutionEntity } from './resolution/resolution.entity';

/**
 * A placement as stored. Rows written before the hosts passed over were counted (2026-12-02) have no counts
 * and name every host passed over, by host id; the view cuts them to the API's length (migrations.service.ts).
 */
export type StoredPlacement = Pick<MigrationPlacement, 'chosen' | 'reason' | 'passedOver'> & {
  passedOverCount?: MigrationPlacement['passedOverCount'];
  passedOverByRule?: NonNullable<MigrationPlacement['passedOverByRule']>;
};

/** One migration: its saga state (JSONB, the whole truth) plus the columns queries and leases need. */
@Entity({ name: 'migrations' })
export class MigrationEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('uuid', { name: 'vm_id' }) vmId: string;
  @Column('uuid', { name: 'cluster_id' }) clusterId: string;
  @Column('text', { name: 'source_host_id' }) sourceHostId: string;
  @Column('text', { name: 'target_host_id' }) targetHostId: string;
  /** The saga's phase, denormalised for queries and the one-active-migration-per-VM index. */
  @Column('text') state: string;
  @Column('json') saga: SagaState;
  @Column('jsonb') vm: VmSpec;
  @Column('jsonb') policy: MigrationPolicy;
  @Column('text', { name: 'target_address' }) targetAddress: string;
  /** Who asked for it: the bearer token's `sub` (null on rows from before tokens). */
  @Column('text', { name: 'requested_by', nullable: true }) requestedBy: string | null;
  /** When the scheduler chose the target: why, and why the other hosts were passed over. */
  @Column('jsonb', { nullable: true }) placement: StoredPlacement | null;
  @Column('int') version: number;
  @Column('text', { name: 'lease_owner', nullable: true }) leaseOwner: string | null;
  @Column('timestamptz', { name: 'lease_until', nullable: true }) leaseUntil: Date | null;
  /**
   * When the saga's next action is due (engine/due-time.ts), written with every saga state: the reconcile
   * pass re-drives a leased migration whose due time has passed and whose action is not in progress.
   * null: nothing to do (queued or ended).
   */
  @Column('timestamptz', { name: 'due_at', nullable: true }) dueAt: Date | null;
  /** W3C traceparent of the request that created it: its steps' spans continue that trace (null: untraced). */
  @Column('text', { name: 'trace_parent', nullable: true }) traceParent: string | null;
  /** What was predicted before the start (docs/prediction.md); null: none could be made (`predictionError` says why), or an older row. */
  @Column('jsonb', { nullable: true }) prediction: MigrationPrediction | null;
  @Column('text', { name: 'prediction_error', nullable: true }) predictionError: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt: Date;
  @Column('timestamptz', { name: 'finished_at', nullable: true }) finishedAt: Date | null;
  /**
   * What it measured of its two hosts, stored when it completes (prediction/measured.ts); SQL NULL before
   * that and on rows completed before the column, JSON null when it measured nothing.
   */
  @Column('jsonb', { nullable: true }) measured: MeasuredFigures | null;
}

/** Events to publish, written in the same transaction as the state that implies them (outbox). */
@Entity({ name: 'outbox' })
export class OutboxEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) seq: string;
  @Column('text', { name: 'event_id', unique: true }) eventId: string;
  @Column('text') type: string;
  @Column('text') subject: string;
  @Column('jsonb') data: Record<string, unknown>;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
  /** The replica that wrote it (its DirectPublisher may be sending it); null: anyone's (outbox-relay.ts). */
  @Column('text', { nullable: true }) writer: string | null;
}

/** Per-cluster admission limits and migration policy; absent fields fall back to the environment's defaults. */
@Entity({ name: 'cluster_settings' })
export class ClusterSettingsEntity {
  @PrimaryColumn('uuid', { name: 'cluster_id' }) clusterId: string;
  @Column('jsonb') limits: Partial<Record<'maxOutboundPerHost' | 'maxInboundPerHost' | 'maxPerCluster', number>>;
  @Column('jsonb') policy: Record<string, unknown>;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt: Date;
}

export const schedulerEntities = [MigrationEntity, OutboxEntity, ClusterSettingsEntity, EvacuationEntity, MigrationResolutionEntity];
