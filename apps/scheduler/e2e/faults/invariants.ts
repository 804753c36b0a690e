import { sleep } from '@flexmig/timing';
import { TERMINAL } from '@flexmig/testing';
import { type FaultHarness } from './fault-harness';

/** One invariant after a fault: its name, whether it held, and what was seen. */
export interface InvariantResult {
  name: string;
  held: boolean;
  detail: string;
}

export interface CheckedEnd {
  /** The migration's state at the end of the check (a terminal one unless the deadline passed). */
  outcome: string;
  /** From the request to the terminal state, as this process saw it (undefined: not terminal in time). */
  timeToTerminalMs?: number;
  invariants: InvariantResult[];
}

export interface MigrationUnderTest {
  migrationId: string;
  vmId: string;
  sourceHostId: string;
  targetHostId: string;
  /** Date.now() when the migration was requested. */
  requestedAt: number;
  /** The migration must be terminal this long after its request. */
  deadlineMs: number;
  /** How long the outcome event may take to reach the stream after the end (default: `settleMs`). */
  eventsSettleMs?: number;
}

const outcomeEvent: Record<string, string> = {
  completed: 'migration.completed',
  'rolled-back': 'migration.rolled-back',
  cancelled: 'migration.cancelled',
  'failed-needs-attention': 'migration.failed',
};

/** How long the checks wait for a state that is still settling (a copy being destroyed, an event in the outbox). */
const settleMs = 15_000;

/**
 * The checks every fault scenario ends with (issue 10, item 7), each returning what it saw instead of
 * throwing, so that the matrix shows every invariant of every scenario:
 * - the migration is terminal within its deadline;
 * - the VM runs on exactly one host, as the agents say (`agent.{hostId}.vm.list`), on the host its
 *   outcome implies (the target when completed, the source when rolled back or cancelled);
 * - on the qemu driver, as QEMU says too: exactly one QEMU process of the VM, in that host's run directory;
 * - inventory records the VM on that host;
 * - the outcome event is on the JetStream events stream exactly once, every other migration event at
 *   most once, and each step's `migration.step-completed` at most once.
 */
export class InvariantChecker {
  constructor(private readonly h: FaultHarness) {}

  async check(m: MigrationUnderTest): Promise<CheckedEnd> {
    const invariants: InvariantResult[] = [];
    const end = await this.terminal(m);
    invariants.push(end.result);
    const expectedHost = end.state === 'completed' ? m.targetHostId : ['rolled-back', 'cancelled'].includes(end.state) ? m.sourceHostId : undefined;
    const agents = await this.oneHostAsAgentsSay(m.vmId, expectedHost);
    invariants.push(agents.result);
    const host = expectedHost ?? agents.hostId;
    if (this.h.driver === 'qemu') invariants.push(await this.oneHostAsQemuSays(m, host));
    invariants.push(await this.inventoryAgrees(m.vmId, host));
    invariants.push(...(await this.eventsOnce(m.migrationId, end.state, m.eventsSettleMs ?? settleMs)));
    return { outcome: end.state, timeToTerminalMs: end.timeToTerminalMs, invariants };
  }

  private async terminal(m: MigrationUnderTest): Promise<{ state: string; timeToTerminalMs?: number; result: InvariantResult }> {
    const name = 'terminal within its deadline';
    let state = 'unknown';
    for (;;) {
      const view = await this.h.migration(m.migrationId).catch(() => undefined);
      state = view?.state ?? state;
      const elapsed = Date.now() - m.requestedAt;
      if (TERMINAL.includes(state)) {
        // why it ended where it did, for a row that fails: the saga's own account
        const why = view?.attention ?? view?.failure;
        const because = why ? `: ${why.stepName}: ${why.message}`.slice(0, 400) : '';
        return { state, timeToTerminalMs: elapsed, result: { name, held: elapsed <= m.deadlineMs, detail: `${state} after ${elapsed} ms (deadline ${m.deadlineMs} ms)${because}` } };
      }
      if (elapsed > m.deadlineMs) {
        const step = view?.steps?.find((s: { status: string }) => s.status === 'running')?.name ?? '?';
        return { state, result: { name, held: false, detail: `still ${state} (step ${step}) after ${elapsed} ms (deadline ${m.deadlineMs} ms)` } };
      }
      await sleep(100);
    }
  }

  /** Every agent asked; an agent that cannot answer counts as a failed check (its copy is unknown). */
  private async copiesAsAgentsSay(vmId: string): Promise<{ copies: { hostId: string; state: string }[]; unanswered: string[] }> {
    const copies: { hostId: string; state: string }[] = [];
    const unanswered: string[] = [];
    for (const host of this.h.o.hosts) {
      try {
        const msg = await this.h.nc.request(`${this.h.prefix}.agent.${host.id}.vm.list`, new TextEncoder().encode('{}'), { timeout: 3000 });
        const reply = JSON.parse(new TextDecoder().decode(msg.data));
        for (const v of reply.data.vms) if (v.vmId === vmId) copies.push({ hostId: host.id, state: v.state });
      } catch (e) {
        unanswered.push(`${host.id} (${(e as Error).message})`);
      }
    }
    return { copies, unanswered };
  }

  private async oneHostAsAgentsSay(vmId: string, expectedHost?: string): Promise<{ hostId?: string; result: InvariantResult }> {
    const name = 'runs on exactly one host (agents)';
    const settled = (c: Awaited<ReturnType<InvariantChecker['copiesAsAgentsSay']>>) =>
      c.unanswered.length === 0 && c.copies.length === 1 && c.copies[0].state === 'running' && (!expectedHost || c.copies[0].hostId === expectedHost);
    let seen = await this.copiesAsAgentsSay(vmId);
    for (const until = Date.now() + settleMs; !settled(seen) && Date.now() < until; ) {
      await sleep(250);
      seen = await this.copiesAsAgentsSay(vmId);
    }
    const where = seen.copies.map((c) => `${c.hostId}: ${c.state}`).join(', ') || 'nowhere';
    const detail = `${where}${seen.unanswered.length ? `; no answer from ${seen.unanswered.join(', ')}` : ''}${expectedHost ? ` (expected ${expectedHost})` : ''}`;
    return { hostId: seen.copies.length === 1 ? seen.copies[0].hostId : undefined, result: { name, held: settled(seen), detail } };
  }

  /** QEMU processes of this VM, found by their command line (the VM's id, in a host's run directory). */
  private qemuProcesses(vmId: string): { hostId: string; pid: number; state: string }[] {
    return this.h
      .qemuProcesses()
      .filter((q) => q.cmdline.includes(vmId))
      .map((q) => ({ hostId: q.hostId ?? 'unknown host', pid: q.pid, state: q.state }));
  }

  private async oneHostAsQemuSays(m: MigrationUnderTest, host?: string): Promise<InvariantResult> {
    const name = 'runs on exactly one host (QEMU processes)';
    const ok = (p: ReturnType<InvariantChecker['qemuProcesses']>) => p.length === 1 && p[0].hostId === host && p[0].state !== 'T';
    let procs = this.qemuProcesses(m.vmId);
    for (const until = Date.now() + settleMs; !ok(procs) && Date.now() < until; ) {
      await sleep(250);
      procs = this.qemuProcesses(m.vmId);
    }
    const detail = procs.map((p) => `${p.hostId}: pid ${p.pid} (${p.state})`).join(', ') || 'no QEMU process';
    return { name, held: ok(procs), detail: `${detail} (expected ${host ?? 'one host'})` };
  }

  private async inventoryAgrees(vmId: string, host?: string): Promise<InvariantResult> {
    const name = 'inventory agrees';
    const vm = (await this.h.http('inventory', 'GET', `/api/v1/vms/${vmId}`)).body;
    return { name, held: !!host && vm?.hostId === host, detail: `inventory: ${vm?.hostId ?? 'no record'} (${vm?.state ?? '?'}); runs on ${host ?? 'no single host'}` };
  }

  private async eventsOnce(migrationId: string, state: string, waitMs: number): Promise<InvariantResult[]> {
    const outcome = outcomeEvent[state];
    const mine = async () => (await this.h.events('migration.>').catch(() => [])).filter((e) => e.subject === migrationId);
    let events = await mine();
    for (const until = Date.now() + waitMs; outcome && !events.some((e) => e.type === outcome) && Date.now() < until; ) {
      await sleep(250);
      events = await mine();
    }
    const counts = new Map<string, number>();
    for (const e of events) {
      const key = e.type === 'migration.step-completed' ? `${e.type}(${e.data.stepName})` : e.type;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const repeated = [...counts].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
    const outcomeCount = outcome ? (counts.get(outcome) ?? 0) : 0;
    return [
      { name: 'outcome event published once', held: outcomeCount === 1, detail: outcome ? `${outcome} ×${outcomeCount}` : `no outcome event for state ${state}` },
      { name: 'no event published twice', held: repeated.length === 0, detail: repeated.length ? repeated.join(', ') : `${events.length} events, each once` },
    ];
  }
}
