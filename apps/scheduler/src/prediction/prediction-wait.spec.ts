import type { MigrationPrediction } from '@flexmig/contracts';
import { predictionWithin } from './prediction-wait';

const prediction = { vmId: 'vm', predicted: { totalTimeMs: 1000 } } as unknown as MigrationPrediction;

describe('the prediction a migration request records (predictionWithin)', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('given inputs already known (ready before the wait ends), then the prediction is recorded', async () => {
    const recorded = predictionWithin(Promise.resolve(prediction), 250);
    await expect(recorded).resolves.toEqual({ prediction, predictionError: null });
  });

  it('given a prediction that fails, then its error is recorded at once and the migration goes ahead', async () => {
    const recorded = predictionWithin(Promise.reject(new Error('agent of src does not answer')), 250);
    await expect(recorded).resolves.toEqual({ prediction: null, predictionError: 'no prediction: agent of src does not answer' });
  });

  it('given inputs still being measured when the wait ends, then no prediction is recorded, with why, and the measuring may finish later', async () => {
    let finish!: (p: MigrationPrediction) => void;
    const measuring = new Promise<MigrationPrediction>((resolve) => (finish = resolve));
    const recorded = predictionWithin(measuring, 250);
    await jest.advanceTimersByTimeAsync(249);
    let settled = false;
    void recorded.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    const r = await recorded;
    expect(r.prediction).toBeNull();
    expect(r.predictionError).toMatch(/still being measured after 250 ms \(PREDICTION_WAIT_MS/);
    expect(r.predictionError).toMatch(/POST \/api\/v1\/migrations\/predict/);
    finish(prediction); // later: nothing is left waiting, nothing throws
    await Promise.resolve();
  });

  it('given a prediction that fails after the wait, then nothing is left unhandled', async () => {
    let fail!: (e: Error) => void;
    const measuring = new Promise<MigrationPrediction>((_, reject) => (fail = reject));
    const recorded = predictionWithin(measuring, 10);
    await jest.advanceTimersByTimeAsync(10);
    expect((await recorded).prediction).toBeNull();
    fail(new Error('probe failed'));
    await Promise.resolve();
  });
});
