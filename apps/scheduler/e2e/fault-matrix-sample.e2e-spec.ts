import { Harness } from '@flexmig/testing';
import { matrix } from './faults/matrix';
import { describeScenarios, type ScenarioResult } from './faults/runner';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`fault matrix sample skipped: ${unavailable}`);

/**
 * A sample of the fault matrix in `npm test`, through the same runner and invariant checker as
 * `npm run faults` (which runs all of it and writes docs/fault-matrix.md).
 */
const sample = ['kill-scheduler@sync-memory', 'kill-target-agent@transfer-config', 'duplicate-and-delay-commands-and-replies+500ms'];

describeIf('a sample of the fault matrix', () => {
  const results: ScenarioResult[] = [];
  const chosen = matrix.filter((s) => sample.includes(s.id));
  it('names scenarios the matrix has', () => {
    expect(chosen.map((s) => s.id).sort()).toEqual([...sample].sort());
  });
  describeScenarios(chosen, results);
});
