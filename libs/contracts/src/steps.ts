import { z } from 'zod';

/** The nine steps of a live migration (DESIGN.md). Step 7 is the point of no return. */
export const STEP_NAMES = [
  'verify-compatibility',
  'transfer-config',
  'transfer-memory',
  'sync-memory',
  'pause-source',
  'transfer-state',
  'resume-target',
  'stop-source',
  'commit',
] as const;
export const StepNameSchema = z.enum(STEP_NAMES);
export type StepName = z.infer<typeof StepNameSchema>;
export const StepNumberSchema = z.number().int().min(1).max(9);
export const POINT_OF_NO_RETURN = 7;

export const stepName = (n: number): StepName => {
  const name = STEP_NAMES[n - 1];
  if (!name) throw new RangeError(`there is no migration step ${n}`);
  return name;
};

/** A step's number (1–9), for the places that order steps; code names steps, it does not count them. */
export const stepNumber = (name: StepName): number => STEP_NAMES.indexOf(name) + 1;
/** Whether a step is at or past the point of no return (resume-target): never undone, only finished. */
export const isPastPointOfNoReturn = (name: StepName): boolean => stepNumber(name) >= POINT_OF_NO_RETURN;

/** What an agent does to undo a step it ran, by name: the saga's compensations as the agents know them. */
export const AGENT_COMPENSATIONS = ['destroy-incoming-vm', 'cancel-stream', 'resume-source'] as const;
export const AgentCompensationSchema = z.enum(AGENT_COMPENSATIONS);
export type AgentCompensation = z.infer<typeof AgentCompensationSchema>;

/**
 * The compensation of `step` on the agent of `role` (undefined: that agent has nothing to undo for it).
 * The one table: the saga's step definitions name their compensations from it, the scheduler sends them,
 * and an agent runs a compensation only when it is this one.
 */
export function agentCompensation(step: StepName, role: 'source' | 'target'): AgentCompensation | undefined {
  switch (step) {
    case 'transfer-config':
      return role === 'target' ? 'destroy-incoming-vm' : undefined;
    case 'transfer-memory':
    case 'sync-memory':
      return role === 'source' ? 'cancel-stream' : undefined;
    case 'pause-source':
      return role === 'source' ? 'resume-source' : undefined;
    case 'transfer-state':
      return role === 'source' ? 'resume-source' : 'destroy-incoming-vm';
    default:
      return undefined; // verify-compatibility and commit are the scheduler's; from resume-target on, nothing is undone
  }
}
