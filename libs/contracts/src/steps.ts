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
