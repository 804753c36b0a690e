import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { MigrationResolution } from '@flexmig/contracts';

/**
 * How an operator closed a `failed-needs-attention` migration: one row per migration (the primary key
 * makes a second resolution fail), written with its `migration.resolved` event in one transaction. The
 * migrations row is not touched: its state stays what the saga ended with.
 */
@Entity({ name: 'migration_resolutions' })
export class MigrationResolutionEntity {
  @PrimaryColumn('uuid', { name: 'migration_id' }) migrationId: string;
  @Column('text', { name: 'runs_on' }) runsOn: 'source' | 'target';
  @Column('text', { name: 'host_id' }) hostId: string;
  @Column('text', { name: 'decided_by' }) decidedBy: 'agents' | 'operator';
  /** The `sub` of the operator's bearer token. */
  @Column('text', { name: 'resolved_by' }) resolvedBy: string;
  @Column('timestamptz', { name: 'resolved_at' }) resolvedAt: Date;
  @Column('text') reason: string;
  /** What each agent said, the fence of the other copy, and what became of the kept one. */
  @Column('jsonb') evidence: Pick<MigrationResolution, 'agents' | 'fence' | 'kept'>;
}

export function resolutionView(r: MigrationResolutionEntity): MigrationResolution {
  return {
    runsOn: r.runsOn,
    hostId: r.hostId,
    decidedBy: r.decidedBy,
    by: r.resolvedBy,
    at: r.resolvedAt.toISOString(),
    reason: r.reason,
    ...r.evidence,
  };
}
