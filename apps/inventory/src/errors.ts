import { ErrorCode, FlexmigError } from '@flexmig/contracts';

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
export const insufficientCapacity = (id: string, need: { memoryMiB: number; vcpus: number }, free: { memoryMiB: number; vcpus: number }) =>
  new FlexmigError(
    ErrorCode.InsufficientCapacity,
    `host ${id} has ${free.memoryMiB} MiB and ${free.vcpus} vCPUs free; ${need.memoryMiB} MiB and ${need.vcpus} vCPUs are needed`,
    { hostId: id, need, free },
  );
export const clusterNameTaken = (name: string) =>
  new FlexmigError(ErrorCode.Conflict, `a cluster named ${name} exists already`, { name });
