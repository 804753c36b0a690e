import { Injectable } from '@nestjs/common';
import { MigrationStore } from '../store/migration-store';

/** Orphans claimed per tick: a replica takes over a dead one's migrations in bounded bites. */
const claimPerTick = 50;

/**
 * Replicas share the work through leases: a migration is driven only by the replica whose lease is current;
 * a replica that dies stops renewing, and another claims the migration and resumes it from its persisted
 * state. This class decides when; the rows are written by the MigrationStore.
 */
@Injectable()
export class LeaseKeeper {
  private booted = false;

  constructor(private readonly store: MigrationStore) {}

  /** Once per process: a replica restarted under the same SCHEDULER_ID gives up what it held before. */
  async boot(): Promise<void> {
    if (this.booted) return;
    await this.store.releaseOwnLeases();
    this.booted = true;
  }

  renew(): Promise<void> {
    return this.store.renewLeases();
  }

  /** The migrations just taken over from a replica whose lease lapsed; the caller resumes them. */
  claimOrphans(): Promise<string[]> {
    return this.store.claimOrphans(claimPerTick);
  }
}
