import * as k8s from '@kubernetes/client-node';
import { apiError } from '../kube-client';
import { type Action, conditionType, hostIdOfNode, type NodeCondition, type NodeView, nextAction, progressCondition, reasons } from './decide';
import { FlexmigApiError, type FlexmigApi } from './flexmig-api';

export interface DrainWatcherOptions {
  nodeSelector: string;
  hostIdLabel: string;
  followIntervalMs: number;
}

/** How long the watch waits before it lists and watches again after the API server broke it off. */
const rewatchDelayMs = 2_000;

/**
 * Watches Nodes (list + watch with resourceVersion, resumed after a break: the client's informer) and
 * acts on each change one node at a time (decide.ts): a cordoned node's host is evacuated through flexmig,
 * an uncordoned node's host leaves maintenance. Progress goes into the Node condition FlexmigEvacuation
 * (nodes/status patch), which is also what makes a restart resume instead of starting twice.
 * RBAC: nodes list/watch, nodes/status patch; docs/kubernetes.md.
 */
export class DrainWatcher {
  private readonly core: k8s.CoreV1Api;
  private informer?: k8s.Informer<k8s.V1Node> & k8s.ObjectCache<k8s.V1Node>;
  private readonly queue = new Set<string>();
  private working = false;
  private stopped = false;
  private followTimer?: NodeJS.Timeout;
  /**
   * The condition last written per node, with the resourceVersion the write made: the informer's copy of a
   * node can be older than our own write (its event is on the way), and acting on it would repeat a step.
   */
  private readonly written = new Map<string, { resourceVersion: number; condition: NodeCondition }>();
  /** True once the first list of nodes was read. */
  synced = false;
  private started = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly flexmig: FlexmigApi,
    private readonly o: DrainWatcherOptions,
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async start(): Promise<void> {
    const selector = this.o.nodeSelector || undefined;
    const informer = k8s.makeInformer(this.kc, '/api/v1/nodes', () => this.core.listNode(selector ? { labelSelector: selector } : {}), selector);
    this.informer = informer;
    const enqueue = (n: k8s.V1Node) => this.enqueue(n.metadata?.name);
    informer.on('add', enqueue);
    informer.on('update', enqueue);
    informer.on('connect', () => {
      if (!this.synced) console.log(`drain-watcher: watching nodes${selector ? ` (${selector})` : ''}`);
      this.synced = true;
    });
    informer.on('error', (e: unknown) => {
      if (this.stopped) return;
      console.warn(`drain-watcher: the watch of nodes broke off (${apiError(e)}); listing and watching again in ${rewatchDelayMs} ms`);
      setTimeout(() => void informer.start().catch((err: unknown) => console.error(`drain-watcher: cannot watch nodes again: ${apiError(err)}`)), rewatchDelayMs);
    });
    await informer.start();
    this.synced = true;
    for (const n of informer.list()) this.enqueue(n.metadata?.name);
    this.started = true;
    // running evacuations are read again now and then: their progress changes without any node event
    this.followTimer = setInterval(() => {
      for (const n of informer.list()) if (n.status?.conditions?.some((c) => c.type === conditionType && c.status === 'True')) this.enqueue(n.metadata?.name);
    }, this.o.followIntervalMs);
  }

  /**
   * /health/ready: the nodes were listed and every change seen so far was acted on (a restarted watcher is
   * ready once it has looked at each node again).
   */
  get ready(): boolean {
    return this.started && this.synced && !this.working && this.queue.size === 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.followTimer);
    await this.informer?.stop();
  }

  private enqueue(name: string | undefined): void {
    if (!name || this.stopped) return;
    this.queue.add(name);
    void this.work();
  }

  /** One node at a time, each queued name once: a burst of updates of one node is one pass. */
  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    try {
      while (this.queue.size && !this.stopped) {
        const name = this.queue.values().next().value as string;
        this.queue.delete(name);
        const node = this.informer?.get(name);
        if (!node) continue;
        try {
          await this.reconcile(node);
        } catch (e) {
          console.error(`drain-watcher: node ${name}: ${e instanceof FlexmigApiError ? e.message : apiError(e)} (tried again at the next change or in ${this.o.followIntervalMs} ms)`);
        }
      }
    } finally {
      this.working = false;
    }
  }

  private view(node: k8s.V1Node): NodeView | undefined {
    const name = node.metadata?.name ?? '';
    const hostId = hostIdOfNode(name, node.metadata?.labels, this.o.hostIdLabel);
    if (!hostId) {
      console.warn(`drain-watcher: node ${name} maps to no valid host id (label ${this.o.hostIdLabel} or its name): skipped`);
      return undefined;
    }
    const mine = this.written.get(name);
    const seen = node.status?.conditions?.find((x) => x.type === conditionType) as NodeCondition | undefined;
    const c = mine && Number(node.metadata?.resourceVersion) < mine.resourceVersion ? mine.condition : seen;
    return { name, hostId, unschedulable: node.spec?.unschedulable === true, ...(c ? { condition: c } : {}) };
  }

  private async reconcile(node: k8s.V1Node): Promise<void> {
    const view = this.view(node);
    if (!view) return;
    const action: Action = nextAction(view);
    switch (action.kind) {
      case 'none':
        return;
      case 'mark-requested':
        // recorded on the node first: a watcher that dies after asking flexmig finds the request, not nothing
        await this.setCondition(view, { status: 'True', reason: reasons.requested, message: `node ${view.name} was cordoned: evacuating host ${view.hostId}` });
        console.log(`drain-watcher: node ${view.name} was cordoned: evacuating host ${view.hostId}`);
        return this.startEvacuation(view);
      case 'start':
        return this.startEvacuation(view);
      case 'follow':
        return this.follow(view, action.evacuationId);
      case 'end-maintenance':
        await this.flexmig.setMaintenance(view.hostId, false).catch((e: unknown) => {
          if (!(e instanceof FlexmigApiError && e.status === 404)) throw e; // a host flexmig does not know has no maintenance
        });
        await this.setCondition(view, { status: 'False', reason: reasons.uncordoned, message: `node ${view.name} was uncordoned: host ${view.hostId} left maintenance` });
        console.log(`drain-watcher: node ${view.name} was uncordoned: host ${view.hostId} left maintenance`);
        return;
    }
  }

  private async startEvacuation(view: NodeView): Promise<void> {
    try {
      const started = await this.flexmig.evacuate(view.hostId);
      console.log(`drain-watcher: evacuation ${started.id} of host ${view.hostId} started (${started.counts.total} VMs)`);
      await this.setCondition(view, progressCondition(started));
      return;
    } catch (e) {
      if (e instanceof FlexmigApiError && e.status === 409 && typeof e.details?.evacuationId === 'string') {
        // already being evacuated (by an operator, or by this watcher before a restart)
        console.log(`drain-watcher: host ${view.hostId} is already being evacuated by ${e.details.evacuationId}: following it`);
        return this.follow(view, e.details.evacuationId);
      }
      if (e instanceof FlexmigApiError && (e.status === 404 || e.status === 400)) {
        // nothing flexmig can do on this node (no agent registered it): say so on the node, once
        await this.setCondition(view, { status: 'True', reason: reasons.notStarted, message: `host ${view.hostId} was not evacuated: ${e.message}` });
        return;
      }
      throw e;
    }
  }

  private async follow(view: NodeView, evacuationId: string): Promise<void> {
    const progress = progressCondition(await this.flexmig.evacuation(evacuationId));
    if (progress.reason === view.condition?.reason && progress.message === view.condition?.message) return;
    await this.setCondition(view, progress);
    if (progress.reason !== reasons.evacuating) console.log(`drain-watcher: ${progress.message}`);
  }

  /** Strategic merge on status.conditions (merge key `type`): the kubelet's conditions are left as they are. */
  private async setCondition(view: NodeView, c: Omit<NodeCondition, 'type'>): Promise<void> {
    const now = new Date().toISOString();
    const transition = view.condition?.status !== c.status ? now : undefined;
    const condition = { type: conditionType, ...c, lastHeartbeatTime: now, ...(transition ? { lastTransitionTime: transition } : {}) };
    const patched = await this.core.patchNodeStatus(
      { name: view.name, body: { status: { conditions: [condition] } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
    view.condition = { type: conditionType, ...c };
    this.written.set(view.name, { resourceVersion: Number(patched.metadata?.resourceVersion), condition: view.condition });
  }
}
