import { MigrationCompleted, MigrationResultSchema, PredictedFiguresSchema } from './index';

const ref = { migrationId: '7b0f3c44-5a6e-4a51-9d55-1f7e3a8f2b10', vmId: '0c9d5f1e-2b3a-4c6d-8e7f-9a0b1c2d3e4f', sourceHostId: 'a', targetHostId: 'b' };
const actual = { totalTimeMs: 5200, downtimeMs: 140, bytesTransferred: 2 ** 30, passes: 4 };
const predicted = { totalTimeMs: 4800, downtimeMs: 120, passes: 4, bytesTransferred: 2 ** 30, converges: true, outcome: 'converged', switchover: 'precopy', throttlePct: 0 };

describe('the prediction beside the actual figures', () => {
  it('given a migration.completed event from before predictions (no `predicted`), then it still validates', () => {
    expect(MigrationCompleted.data.parse({ ...ref, ...actual })).toEqual({ ...ref, ...actual });
    expect(MigrationResultSchema.parse(actual)).toEqual(actual);
  });

  it('given one with `predicted`, then it validates; a malformed prediction is refused', () => {
    expect(MigrationCompleted.data.parse({ ...ref, ...actual, predicted })).toMatchObject({ predicted });
    expect(MigrationCompleted.data.safeParse({ ...ref, ...actual, predicted: { ...predicted, converges: 'yes' } }).success).toBe(false);
    expect(PredictedFiguresSchema.safeParse({ ...predicted, totalTimeMs: -1 }).success).toBe(false);
  });
});
