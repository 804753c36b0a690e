/**
 * The port through which an evacuation asks for a migration without a target (placement chooses it).
 * Bound by the scheduler module to `MigrationsService.admitted({ vmId }, requestedBy)`, so that an evacuation's
 * migrations go through the same admission (checks, placement, limits, queue) as any other.
 * It throws the admission's FlexmigError when the VM cannot move (INSUFFICIENT_CAPACITY with each host's
 * reason, VM_NOT_RUNNING, MIGRATION_ACTIVE with `details.migrationId`…).
 */
export interface MigrationRequester {
  /**
   * `requestedBy`: who asked for the evacuation, recorded on each of its migrations. `hostsReadSince`: when
   * the host went into maintenance (this process's clock); placement may share a read of the cluster's hosts
   * that started then or later (PlacementService.place).
   */
  request(vmId: string, requestedBy: string, opts?: { hostsReadSince?: number }): Promise<{ id: string }>;
}

export const MIGRATION_REQUESTER = Symbol('MIGRATION_REQUESTER');
