import { Cluster, Host, Vm, Reservation, VendorSchema } from '@flexmig/contracts';
import { ClusterEntity, HostEntity, ReservationEntity, VmEntity } from './entities';

export const clusterView = (c: ClusterEntity): Cluster => ({
  id: c.id,
  name: c.name,
  imcMode: c.imcMode,
  createdAt: c.createdAt.toISOString(),
});

export const hostView = (h: HostEntity, allocated: { memoryMiB: number; vcpus: number }): Host => ({
  id: h.id,
  clusterId: h.clusterId,
  hostname: h.hostname,
  cpu: { vendor: VendorSchema.parse(h.cpuVendor), modelName: h.cpuModelName, features: h.cpuFeatures },
  maxImcMode: h.maxImcMode,
  memoryMiB: h.memoryMiB,
  vcpus: h.vcpus,
  allocatedMemoryMiB: allocated.memoryMiB,
  allocatedVcpus: allocated.vcpus,
  driver: h.driver as Host['driver'],
  migrationAddress: h.migrationAddress,
  state: h.state,
  maintenance: h.maintenance,
  lastHeartbeatAt: h.lastHeartbeatAt.toISOString(),
  registeredAt: h.registeredAt.toISOString(),
  agentInstanceId: h.agentInstanceId,
});

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
  createdAt: v.createdAt.toISOString(),
  updatedAt: v.updatedAt.toISOString(),
});

export const reservationView = (r: ReservationEntity): Reservation => ({
  migrationId: r.migrationId,
  vmId: r.vmId,
  hostId: r.hostId,
  memoryMiB: r.memoryMiB,
  vcpus: r.vcpus,
  createdAt: r.createdAt.toISOString(),
});
