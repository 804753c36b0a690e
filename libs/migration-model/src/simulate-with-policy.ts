/**
 * The closed loop: a `PrecopySimulation` steered by `decideConvergence`, the way the sim driver runs
 * it, but all at once on the virtual clock. The policy is asked at every pass boundary and at the
 * moments a timeout falls due inside a pass (so a long pass cannot overrun the completion timeout).
 */
import { MS_PER_SEC } from './constants';
import { type Decision, completionTimeoutMs, decideConvergence, lastProgressMs } from './convergence-policy';
import type { MigrationResult } from './precopy-model';
import { PrecopySimulation, type PrecopySimulationOptions, type SimulationEvent } from './precopy-simulation';
import type { MigrationPolicy, PrecopyParamsInput } from './schemas';

/** Carries a decision out on the simulation; returns the events it caused (an abort's `failed`). */
export function applyDecision(sim: PrecopySimulation, decision: Decision): SimulationEvent[] {
  switch (decision.action) {
    case 'continue':
      return [];
    case 'throttle':
      if (sim.phase === 'precopy') sim.setThrottlePct(decision.percent);
      return [];
    case 'raise-downtime':
      return sim.phase === 'precopy' ? sim.setDowntimeLimitMs(decision.downtimeLimitMs) : [];
    case 'switch-to-postcopy':
      return sim.phase === 'precopy' && !sim.postcopyPending ? sim.switchToPostcopy() : [];
    case 'abort':
      return sim.phase === 'precopy' || sim.phase === 'pre-switchover' ? sim.abort(`${decision.code}: ${decision.reason}`) : [];
    default: {
      const never: never = decision;
      throw new Error(`unknown decision ${JSON.stringify(never)}`);
    }
  }
}

export interface PolicyRunDecision {
  atMs: number;
  /** Completed passes when the decision was taken. */
  afterPass: number;
  decision: Decision;
}

export interface PolicyRun {
  result: MigrationResult;
  /** Every decision other than `continue`, in order. */
  decisions: PolicyRunDecision[];
  events: SimulationEvent[];
}

/**
 * Runs one migration to its end under `policy`. The simulation's downtime limit starts at the
 * policy's (`params.downtimeLimitMs` is ignored). `pauseBeforeSwitchover` is not supported here.
 */
export function simulateWithPolicy(
  params: PrecopyParamsInput,
  policy: MigrationPolicy,
  options: Omit<PrecopySimulationOptions, 'pauseBeforeSwitchover' | 'startMs'> = {},
): PolicyRun {
  const sim = new PrecopySimulation({ ...params, downtimeLimitMs: policy.downtimeLimitMs }, { ...options, startMs: 0 });
  const decisions: PolicyRunDecision[] = [];
  const events: SimulationEvent[] = [];
  const completionDeadline = completionTimeoutMs(policy);
  for (let boundary = sim.nextBoundaryMs(); boundary !== null; boundary = sim.nextBoundaryMs()) {
    const deadlines = [boundary];
    if (sim.phase === 'precopy') {
      const progressDeadline = lastProgressMs(sim.history, policy.memoryBytes) + policy.progressTimeoutSec * MS_PER_SEC;
      if (sim.history.length > 0 && progressDeadline > sim.nowMs) deadlines.push(progressDeadline);
      if (completionDeadline > sim.nowMs) deadlines.push(completionDeadline);
    }
    const t = Math.min(...deadlines);
    events.push(...sim.advanceTo(t));
    if (sim.phase !== 'precopy') continue;
    const decision = decideConvergence(sim.history, policy, sim.nowMs);
    if (decision.action !== 'continue') decisions.push({ atMs: sim.nowMs, afterPass: sim.history.length, decision });
    events.push(...applyDecision(sim, decision));
  }
  return { result: sim.result!, decisions, events };
}
