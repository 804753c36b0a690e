import { type Host, hostCapacity } from '@flexmig/contracts';

/**
 * A host record as inventory answers it (`Host`): an up, empty sim host of 32 vCPUs and 64 GiB with
 * highest mode IvyBridge, in cluster `11111111-…`, without overcommit (ratios 1.0: a test about
 * overcommit sets them); override what a test is about. Its capacity follows its size and ratios unless given.
 */
export const hostRecord = (id: string, over: Partial<Host> = {}): Host => {
  const size = { memoryMiB: over.memoryMiB ?? 65_536, vcpus: over.vcpus ?? 32 };
  const ratios = { cpuAllocationRatio: over.cpuAllocationRatio ?? 1, memoryAllocationRatio: over.memoryAllocationRatio ?? 1 };
  const capacity = hostCapacity(size, ratios);
  return {
    ...hostFields(id),
    ...ratios,
    capacityMemoryMiB: capacity.memoryMiB,
    capacityVcpus: capacity.vcpus,
    ...over,
  };
};

const hostFields = (id: string): Omit<Host, 'cpuAllocationRatio' | 'memoryAllocationRatio' | 'capacityMemoryMiB' | 'capacityVcpus'> => ({
  id,
  clusterId: '11111111-1111-4111-8111-111111111111',
  hostname: id,
  cpu: { vendor: 'Intel', modelName: 'Xeon', features: ['sse2'] },
  maxImcMode: 'IvyBridge',
  memoryMiB: 65_536,
  vcpus: 32,
  allocatedMemoryMiB: 0,
  allocatedVcpus: 0,
  driver: 'sim',
  migrationAddress: `${id}:7000`,
  state: 'up',
  maintenance: false,
  lastHeartbeatAt: '2025-01-01T00:00:00.000Z',
  registeredAt: '2025-01-01T00:00:00.000Z',
});
