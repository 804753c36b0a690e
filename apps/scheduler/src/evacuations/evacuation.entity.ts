import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * One VM of an evacuated host, as the evacuation recorded it when it asked for its migration. What the
 * migration became is read from the `migrations` table when the evacuation is shown.
 */
export interface EvacuationItemRecord {
  vmId: string;
  name: string;
  /** The migration that moves it (null when none could be started: see `reason`). */
  migrationId: string | null;
  /** Why no migration could be started for it (placement found no host, VM not running…). */
  reason: string | null;
  code: string | null;
  /** The migrations asked for it before `migrationId`, whose target step 1 refused (oldest first; absent on rows from before re-placement). */
  earlierMigrationIds?: string[];
}

/** An evacuation: a host put into maintenance and every VM on it migrated away (issue 4, item 8). */
@Entity({ name: 'evacuations' })
export class EvacuationEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('text', { name: 'host_id' }) hostId: string;
  @Column('uuid', { name: 'cluster_id' }) clusterId: string;
  /** `running` until every VM's migration has ended; at most one `running` per host (unique index). */
  @Column('text') state: string;
  @Column('jsonb') items: EvacuationItemRecord[];
  /** Who asked for it: the bearer token's `sub` (null on rows from before tokens); its migrations record the same. */
  @Column('text', { name: 'requested_by', nullable: true }) requestedBy: string | null;
  /** Set once a migration was asked for (or a reason recorded) for every VM of the host: only then can it finish. */
  @Column('timestamptz', { name: 'requested_at', nullable: true }) requestedAt: Date | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt: Date;
  @Column('timestamptz', { name: 'finished_at', nullable: true }) finishedAt: Date | null;
}
