import type { MigrationLimits } from '../config';

/** What a migration holds while it runs: a slot on its source, its target, and its cluster. */
export interface SlotHolder {
  clusterId: string;
  sourceHostId: string;
  targetHostId: string;
}

export interface QueuedMigration extends SlotHolder {
  id: string;
}

const within = (count: number, limit: number) => limit === 0 || count < limit;

/**
 * Which queued migrations may start now, in arrival order, without any limit being exceeded: outbound
 * per source host, inbound per target host, and per cluster (0 = unlimited). A migration blocked by a
 * busy host does not hold back later ones that need other hosts (no head-of-line blocking).
 */
export function selectAdmissible(queued: readonly QueuedMigration[], active: readonly SlotHolder[], limitsOf: (clusterId: string) => MigrationLimits): string[] {
  const outbound = new Map<string, number>();
  const inbound = new Map<string, number>();
  const perCluster = new Map<string, number>();
  const add = (m: SlotHolder) => {
    outbound.set(m.sourceHostId, (outbound.get(m.sourceHostId) ?? 0) + 1);
    inbound.set(m.targetHostId, (inbound.get(m.targetHostId) ?? 0) + 1);
    perCluster.set(m.clusterId, (perCluster.get(m.clusterId) ?? 0) + 1);
  };
  active.forEach(add);
  const admitted: string[] = [];
  for (const m of queued) {
    const l = limitsOf(m.clusterId);
    if (
      within(outbound.get(m.sourceHostId) ?? 0, l.maxOutboundPerHost) &&
      within(inbound.get(m.targetHostId) ?? 0, l.maxInboundPerHost) &&
      within(perCluster.get(m.clusterId) ?? 0, l.maxPerCluster)
    ) {
      admitted.push(m.id);
      add(m);
    }
  }
  return admitted;
}
