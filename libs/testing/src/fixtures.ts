import type { Host } from '@flexmig/contracts';

/**
 * A host record as inventory answers it (`Host`): an up, empty sim host of 32 vCPUs and 64 GiB with
 * highest mode IvyBridge, in cluster `11111111-…`; override what a test is about.
 */
export const hostRecord = (id: string, over: Partial<Host> = {}): Host => ({
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
  ...over,
});
