import { type AllocationRatios, ErrorCode, FlexmigError, type Verdict } from '@flexmig/contracts';

// Small named errors, each raised by one pre-check (STYLE.md 7).

export const clusterNotFound = (id: string) =>
  new FlexmigError(ErrorCode.NotFound, `cluster ${id} does not exist`, { clusterId: id });
export const hostNotFound = (id: string) =>
  new FlexmigError(ErrorCode.NotFound, `host ${id} does not exist (hosts appear when their agent registers)`, { hostId: id });
export const vmNotFound = (id: string) => new FlexmigError(ErrorCode.NotFound, `VM ${id} does not exist`, { vmId: id });
export const hostDown = (id: string) =>
  new FlexmigError(ErrorCode.HostDown, `host ${id} is down (no heartbeat from its agent): start the agent or choose another host`, { hostId: id });
export const hostInMaintenance = (id: string) =>
  new FlexmigError(ErrorCode.HostInMaintenance, `host ${id} is in maintenance and takes no new VMs`, { hostId: id });
export const insufficientCapacity = (id: string, need: { memoryMiB: number; vcpus: number }, free: { memoryMiB: number; vcpus: number }, ratios: AllocationRatios) =>
  new FlexmigError(
    ErrorCode.InsufficientCapacity,
    `host ${id} has ${Math.max(0, free.memoryMiB)} MiB and ${Math.max(0, free.vcpus)} vCPUs free (its cluster's allocation ratios: vCPU ${ratios.cpuAllocationRatio}, memory ${ratios.memoryAllocationRatio}); ${need.memoryMiB} MiB and ${need.vcpus} vCPUs are needed: choose another host, or raise the ratios (PUT /api/v1/clusters/:id/allocation-ratios)`,
    { hostId: id, need, free, ...ratios },
  );
export const clusterNameTaken = (name: string) =>
  new FlexmigError(ErrorCode.Conflict, `a cluster named ${name} exists already`, { name });

// Defence in depth (docs/security.md, "Agents and inventory"): inventory has no migration table; the
// reservation a migration made at step 1 is what ties a later request to that migration, VM and host.
export const noReservation = (migrationId: string, vmId: string, toHostId: string) =>
  new FlexmigError(
    ErrorCode.ReservationMismatch,
    `migration ${migrationId} holds no reservation for VM ${vmId} on host ${toHostId}: a VM is relocated only by the migration that reserved its target`,
    { migrationId, vmId, hostId: toHostId },
    false,
  );
export const reservationMismatch = (migrationId: string, held: { vmId: string; hostId: string }, asked: { vmId: string; hostId: string }) =>
  new FlexmigError(
    ErrorCode.ReservationMismatch,
    `migration ${migrationId} reserved host ${held.hostId} for VM ${held.vmId}, not host ${asked.hostId} for VM ${asked.vmId}`,
    { migrationId, held, asked },
    false,
  );
export const vmAlreadyMigrating = (vmId: string, migrationId: string, otherMigrationId: string) =>
  new FlexmigError(
    ErrorCode.MigrationActive,
    `VM ${vmId} already has a reservation for migration ${otherMigrationId}; migration ${migrationId} cannot reserve another host for it until that one is released or committed`,
    { vmId, migrationId, otherMigrationId },
    false,
  );
export const reserveOnOwnHost = (vmId: string, hostId: string) =>
  new FlexmigError(ErrorCode.UnableToMigrateToSelf, `VM ${vmId} already runs on ${hostId}: there is nothing to reserve there`, { vmId, hostId }, false);
export const reserveAcrossClusters = (vmId: string, vmCluster: string, hostId: string, hostCluster: string) =>
  new FlexmigError(
    ErrorCode.ReservationMismatch,
    `VM ${vmId} belongs to cluster ${vmCluster}, host ${hostId} to cluster ${hostCluster}: a VM migrates within its cluster`,
    { vmId, hostId },
    false,
  );

// Two agents with one HOST_ID (docs/reconciliation.md): the first keeps the host while it heartbeats.
export const hostOwnedByAnotherAgent = (hostId: string, ownerInstanceId: string, instanceId: string, sinceMs: number, hostDownAfterMs: number) =>
  new FlexmigError(
    ErrorCode.HostOwnedByAnotherAgent,
    `host ${hostId} is held by agent instance ${ownerInstanceId}, which heartbeated ${Math.round(sinceMs)} ms ago; instance ${instanceId} is refused: ` +
      `another agent runs with HOST_ID ${hostId}. This one may take over once that one has been silent for HOST_DOWN_AFTER_MS (${hostDownAfterMs} ms)`,
    { hostId, ownerInstanceId, instanceId, hostDownAfterMs, retryAfterMs: Math.max(1, Math.ceil(hostDownAfterMs - sinceMs) + 100) },
    false,
  );

// Step 1's CPU check (the reservation's verdict)
export const cpuIncompatible = (hostId: string, vmName: string, verdict: Verdict) =>
  new FlexmigError(
    ErrorCode.CpuIncompatible,
    `target host ${hostId} cannot run VM ${vmName} with CPU baseline ${verdict.baseline}: ${verdict.reason}`,
    { hostId, baseline: verdict.baseline, missing: verdict.missing, vendorMismatch: verdict.vendorMismatch },
    false,
  );
export const cpuChangedSinceVerdict = (vmId: string, hostId: string, which: 'VM' | 'host') =>
  new FlexmigError(
    ErrorCode.Conflict,
    `the ${which === 'VM' ? `CPU baseline of VM ${vmId}` : `CPU of host ${hostId}`} changed while step 1 checked it; the step is tried again with the new one`,
    { vmId, hostId },
    true,
  );
