import { agentCompensation, POINT_OF_NO_RETURN as CONTRACT_POINT_OF_NO_RETURN, STEP_NAMES, type StepName } from '@flexmig/contracts';

export type { StepName };

/** Step numbers 1–9 (DESIGN.md, "The nine migration steps"). */
export type StepNumber = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

/** Who performs a step. The scheduler performs 1 and 9 itself (cpu-compat / inventory requests). */
export type StepActor = 'scheduler' | 'source' | 'target' | 'source+target';

export interface StepDefinition {
  readonly number: StepNumber;
  readonly name: StepName;
  readonly actor: StepActor;
  /** What undoes the step when a later step fails before the point of no return; null: none. */
  readonly compensation: string | null;
  /** How long one attempt may take before its outcome is considered unknown (then it is queried). */
  readonly defaultTimeoutMs: number;
}

/** Step 7 (`resume-target`): once its command has been SENT, the source copy is never resumed. */
export const POINT_OF_NO_RETURN = 7 as const satisfies StepNumber;
// The saga and the wire contracts must agree; a mismatch is a programming error found at import time.
if (CONTRACT_POINT_OF_NO_RETURN !== POINT_OF_NO_RETURN) {
  throw new Error('libs/saga and libs/contracts disagree on the point of no return');
}

const s = 1_000;
const min = 60 * s;

/** An agent step's compensation, by the name each agent knows it (libs/contracts `agentCompensation`): both halves of step 6. */
const undoneBy = (step: StepName): string => {
  const names = (['source', 'target'] as const).map((role) => agentCompensation(step, role)).filter((c) => c !== undefined);
  if (names.length === 0) throw new Error(`${step} has no compensation on any agent`);
  return names.join(' + ');
};

/**
 * The nine steps, in order. Timeouts are per attempt; when one passes the agent is asked what it did
 * (never guessed). They are generous on purpose: a too-short timeout costs a query round trip, a
 * too-long one only delays noticing a dead agent.
 */
export const STEPS: readonly StepDefinition[] = Object.freeze([
  // two request/replies (cpu-compat verdict, inventory reservation), each well under a second
  { number: 1, name: STEP_NAMES[0], actor: 'scheduler', compensation: 'release-reservation', defaultTimeoutMs: 30 * s },
  // the target defines the incoming VM and allocates devices: seconds, not minutes
  { number: 2, name: STEP_NAMES[1], actor: 'target', compensation: undoneBy(STEP_NAMES[1]), defaultTimeoutMs: 60 * s },
  // a full memory copy: 1 TiB at 1 GiB/s is ~17 min; the agent enforces its own completion timeout
  { number: 3, name: STEP_NAMES[2], actor: 'source', compensation: undoneBy(STEP_NAMES[2]), defaultTimeoutMs: 30 * min },
  // iterative passes until the rest fits the downtime budget; the agent's progress timeout bounds it
  { number: 4, name: STEP_NAMES[3], actor: 'source', compensation: undoneBy(STEP_NAMES[3]), defaultTimeoutMs: 30 * min },
  // QMP `stop` is sub-second; downtime starts here, so a stuck pause must surface quickly
  { number: 5, name: STEP_NAMES[4], actor: 'source', compensation: undoneBy(STEP_NAMES[4]), defaultTimeoutMs: 10 * s },
  // last dirty pages (sized to fit the downtime budget) plus device state
  { number: 6, name: STEP_NAMES[5], actor: 'source+target', compensation: undoneBy(STEP_NAMES[5]), defaultTimeoutMs: 60 * s },
  // QMP `cont` on the target; from here only forward
  { number: 7, name: STEP_NAMES[6], actor: 'target', compensation: null, defaultTimeoutMs: 30 * s },
  // stop the source copy and release its resources; retried until done
  { number: 8, name: STEP_NAMES[7], actor: 'source', compensation: null, defaultTimeoutMs: 2 * min },
  // inventory records the VM on its new host; retried until done
  { number: 9, name: STEP_NAMES[8], actor: 'scheduler', compensation: null, defaultTimeoutMs: 30 * s },
] satisfies StepDefinition[]);

if (STEPS.length !== STEP_NAMES.length || STEPS.some((d, i) => d.name !== STEP_NAMES[i])) {
  throw new Error('libs/saga STEPS and libs/contracts STEP_NAMES disagree');
}

export const isStepNumber = (n: unknown): n is StepNumber =>
  typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= STEPS.length;

export const stepDefinition = (n: StepNumber): StepDefinition => STEPS[n - 1];

/** Steps 1–6: compensable, bounded retries. */
export const isBeforePointOfNoReturn = (n: StepNumber): boolean => n < POINT_OF_NO_RETURN;
