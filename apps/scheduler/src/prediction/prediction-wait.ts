import type { MigrationPrediction } from '@flexmig/contracts';

/** What a migration records of its prediction: one of the two. */
export interface RecordedPrediction {
  prediction: MigrationPrediction | null;
  predictionError: string | null;
}

/**
 * The prediction a migration request records, waited for at most `waitMs`. Its inputs are usually known
 * already (a recent dirty-rate sample, a link learnt or probed): then it is ready in milliseconds. A VM
 * never sampled, or a host pair never probed, takes seconds to measure (a QEMU dirty-rate sample about
 * 5 s, a link probe 1–3 s); a migration does not wait for that. The measuring goes on: its results are
 * kept (the agent's sample, the scheduler's link), so the next prediction of that VM or pair is ready.
 * A failed prediction never holds a migration back either.
 */
export async function predictionWithin(pending: Promise<MigrationPrediction>, waitMs: number): Promise<RecordedPrediction> {
  const settled = pending.then(
    (prediction): RecordedPrediction => ({ prediction, predictionError: null }),
    (e: unknown): RecordedPrediction => ({ prediction: null, predictionError: `no prediction: ${(e as Error)?.message ?? String(e)}` }),
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<RecordedPrediction>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          prediction: null,
          predictionError:
            `no prediction: its inputs were still being measured after ${waitMs} ms (PREDICTION_WAIT_MS; a first dirty-rate sample of a VM ` +
            'takes about 5 s, a first link probe between two hosts 1–3 s), and the migration did not wait for them. The measuring goes on and ' +
            'is kept: POST /api/v1/migrations/predict answers from it, and so does the next migration of this VM',
        }),
      waitMs,
    );
  });
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
