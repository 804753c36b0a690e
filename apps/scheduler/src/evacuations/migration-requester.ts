import { ErrorCode, isFlexmigError } from '@flexmig/contracts';

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

/**
 * The answer to one request, as an evacuation records it: the migration that moves the VM, or why none could
 * be started (`retryable`: the failure was the world's, an unreachable inventory say, not the VM's or the cluster's).
 */
export interface AskedFor {
  migrationId: string | null;
  reason: string | null;
  code: string | null;
  retryable: boolean;
}

/** Asks for a migration of one VM; a VM already moving (an operator's migration, another replica's request) is followed, not refused. */
export async function askFor(requester: MigrationRequester, vmId: string, requestedBy: string, opts?: { hostsReadSince?: number }): Promise<AskedFor> {
  try {
    const { id } = await requester.request(vmId, requestedBy, opts);
    return { migrationId: id, reason: null, code: null, retryable: false };
  } catch (e) {
    if (isFlexmigError(e) && e.code === ErrorCode.MigrationActive && typeof e.details?.migrationId === 'string') {
      return { migrationId: e.details.migrationId, reason: null, code: null, retryable: false };
    }
    const code = isFlexmigError(e) ? e.code : ErrorCode.Internal;
    return { migrationId: null, reason: (e as Error).message, code, retryable: isFlexmigError(e) && e.retryable };
  }
}
