import { type AllocationRatios, Cluster, Host, hostCapacity, type HostListItem, isoTime, Vm, Reservation, VendorSchema } from '@flexmig/contracts';
import { ClusterEntity, HostEntity, ReservationEntity, VmEntity } from './entities';

export const clusterView = (c: ClusterEntity): Cluster => ({
  id: c.id,
  name: c.name,
  imcMode: c.imcMode,
  ...ratiosOf(c),
  createdAt: isoTime(c.createdAt),
});

/** A cluster's allocation ratios (the columns come back from PostgreSQL as numbers). */
export const ratiosOf = (c: Pick<ClusterEntity, 'cpuAllocationRatio' | 'memoryAllocationRatio'>): AllocationRatios => ({
  cpuAllocationRatio: Number(c.cpuAllocationRatio),
  memoryAllocationRatio: Number(c.memoryAllocationRatio),
});

/** The columns of a host that the API shows (not the VM set its agent reported, which only reconciliation reads). */
export type ShownHost = Omit<HostEntity, 'vmDigest' | 'reportedVms' | 'reportedDigest' | 'reportedAt'>;

/** A host as the API shows it: with what it holds, and what it may hold under its cluster's ratios. */
export const hostView = (h: ShownHost, allocated: { memoryMiB: number; vcpus: number }, ratios: AllocationRatios): Host =>
  hostWith({ vendor: VendorSchema.parse(h.cpuVendor), modelName: h.cpuModelName, features: h.cpuFeatures }, h, allocated, ratios);

/** A host as a list shows it: its CPU's feature list named by `featureSet`, the digest its page's `featureSets` carries it under. */
export const hostListItemView = (
  h: Omit<ShownHost, 'cpuFeatures'>,
  featureSet: string,
  allocated: { memoryMiB: number; vcpus: number },
  ratios: AllocationRatios,
): HostListItem => hostWith({ vendor: VendorSchema.parse(h.cpuVendor), modelName: h.cpuModelName, featureSet }, h, allocated, ratios);

function hostWith<C>(cpu: C, h: Omit<ShownHost, 'cpuFeatures'>, allocated: { memoryMiB: number; vcpus: number }, ratios: AllocationRatios) {
  const capacity = hostCapacity(h, ratios);
  return {
    id: h.id,
    clusterId: h.clusterId,
    hostname: h.hostname,
    cpu,
    maxImcMode: h.maxImcMode,
    memoryMiB: h.memoryMiB,
    vcpus: h.vcpus,
    allocatedMemoryMiB: allocated.memoryMiB,
    allocatedVcpus: allocated.vcpus,
    ...ratios,
    capacityMemoryMiB: capacity.memoryMiB,
    capacityVcpus: capacity.vcpus,
    driver: h.driver as Host['driver'],
    migrationAddress: h.migrationAddress,
    state: h.state,
    maintenance: h.maintenance,
    lastHeartbeatAt: isoTime(h.lastHeartbeatAt),
    registeredAt: isoTime(h.registeredAt),
    agentInstanceId: h.agentInstanceId,
  };
}

export const vmView = (v: VmEntity): Vm => ({
  id: v.id,
  name: v.name,
  clusterId: v.clusterId,
  hostId: v.hostId,
  memoryMiB: v.memoryMiB,
  vcpus: v.vcpus,
  cpuBaseline: v.cpuBaseline,
  ...(v.cpuFeatures ? { cpuFeatures: v.cpuFeatures } : {}),
  state: v.state,
  createdAt: isoTime(v.createdAt),
  updatedAt: isoTime(v.updatedAt),
});

export const reservationView = (r: ReservationEntity): Reservation => ({
  migrationId: r.migrationId,
  vmId: r.vmId,
  hostId: r.hostId,
  memoryMiB: r.memoryMiB,
  vcpus: r.vcpus,
  createdAt: isoTime(r.createdAt),
});
