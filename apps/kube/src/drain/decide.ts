import { type EvacuationView, hostIdFromName, HostIdSchema } from '@flexmig/contracts';

/**
 * Node drain → evacuation, as pure decisions (drain-watcher.ts does the I/O). The state of a cordon lives
 * on the Node itself, in the condition `FlexmigEvacuation`, so that a restarted watcher (or another
 * replica) takes up where the last one was and never starts one cordon's evacuation twice:
 *   cordoned, no condition True            → mark it True/EvacuationRequested (before asking flexmig)
 *   cordoned, True, no evacuation id yet   → ask flexmig to evacuate (a running one is followed, 409)
 *   cordoned, True, evacuation id, running → follow it: its counts in the condition's message
 *   cordoned, True, finished               → nothing (until the node is uncordoned)
 *   schedulable, condition True            → end the host's maintenance, condition False/Uncordoned
 * docs/kubernetes.md, "Node drain".
 */
export const conditionType = 'FlexmigEvacuation';

export const reasons = {
  requested: 'EvacuationRequested',
  evacuating: 'Evacuating',
  evacuated: 'Evacuated',
  withFailures: 'EvacuatedWithFailures',
  notStarted: 'EvacuationNotStarted',
  uncordoned: 'Uncordoned',
} as const;

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export interface NodeView {
  name: string;
  hostId: string;
  unschedulable: boolean;
  condition?: NodeCondition;
}

export type Action =
  | { kind: 'none' }
  | { kind: 'mark-requested' }
  | { kind: 'start' }
  | { kind: 'follow'; evacuationId: string }
  | { kind: 'end-maintenance' };

const idPattern = /\bevacuation ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/;

/** The evacuation a condition's message names (the watcher writes it there). */
export const evacuationIdOf = (message: string | undefined): string | undefined => idPattern.exec(message ?? '')?.[1];

const finished = new Set<string>([reasons.evacuated, reasons.withFailures, reasons.notStarted]);

export function nextAction(node: NodeView): Action {
  const active = node.condition?.status === 'True';
  if (!node.unschedulable) return active ? { kind: 'end-maintenance' } : { kind: 'none' };
  if (!active) return { kind: 'mark-requested' };
  if (finished.has(node.condition?.reason ?? '')) return { kind: 'none' };
  const id = evacuationIdOf(node.condition?.message);
  return id ? { kind: 'follow', evacuationId: id } : { kind: 'start' };
}

/**
 * The host id of a node: the value of its label `labelKey` when the node has it (a node whose agent runs
 * with another HOST_ID), else its name mapped as the agent maps spec.nodeName (`Node-1.example` →
 * `node-1-example`). Undefined when neither is a valid host id.
 */
export function hostIdOfNode(name: string, labels: Record<string, string> | undefined, labelKey?: string): string | undefined {
  const raw = (labelKey && labels?.[labelKey]) || name;
  const parsed = HostIdSchema.safeParse(hostIdFromName(raw));
  return parsed.success ? parsed.data : undefined;
}

/** The condition that shows an evacuation's progress on the Node. */
export function progressCondition(view: EvacuationView): Omit<NodeCondition, 'type'> {
  const c = view.counts;
  const reason = view.state === 'running' ? reasons.evacuating : view.state === 'completed' ? reasons.evacuated : reasons.withFailures;
  const notMoved = view.vms.filter((v) => v.outcome === 'not-moved' || v.outcome === 'failed').map((v) => `${v.name}: ${v.reason ?? v.outcome}`);
  const details = notMoved.length ? `; ${notMoved.slice(0, 5).join('; ')}${notMoved.length > 5 ? ` (+${notMoved.length - 5} more)` : ''}` : '';
  return {
    status: 'True',
    reason,
    message: `evacuation ${view.id} of host ${view.hostId}: ${view.state}, ${c.moved} of ${c.total} VMs moved, ${c.moving} moving, ${c.failed} failed, ${c.notMoved} not moved${details}`.slice(0, 1024),
  };
}
