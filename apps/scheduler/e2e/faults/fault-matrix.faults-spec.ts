import { Harness } from '@flexmig/testing';
import { matrix } from './matrix';
import { describeScenarios, resultsFile, selectScenarios, writeResults, type ScenarioResult } from './runner';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`fault matrix skipped: ${unavailable}`);

/**
 * The whole fault matrix (run by `npm run faults`, which renders docs/fault-matrix.md from the results
 * this writes). FAULTS_FILTER (a regular expression on the scenario ids) and FAULTS_DRIVER narrow it.
 */
describeIf('the fault matrix', () => {
  const results: ScenarioResult[] = [];
  afterAll(() => {
    writeResults(results);
    console.log(`fault matrix: ${results.filter((r) => r.passed).length}/${results.length} scenarios passed; results in ${resultsFile()}`);
  });
  // every row runs or says why it could not: a setup this machine lacks is a failed row, not a skipped one
  describeScenarios(selectScenarios(matrix), results, { unavailable: 'fail' });
});
