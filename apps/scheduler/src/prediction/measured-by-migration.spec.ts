import { createSaga, type JsonValue, type SagaState } from '@flexmig/saga';
import { measuredByMigration } from './measured';

const MiB = 2 ** 20;
const ref = { migrationId: '6f1c1a52-6c1e-4d0b-9f51-6d2f3c1b9a00', vmId: '0b7d5a8e-2f43-4c55-8a0e-3f9d1e6c7b11', sourceHostId: 'a', targetHostId: 'b' };
const T0 = Date.UTC(2026, 11, 1, 21, 0, 0);

/**
 * A completed migration of 5 s: step 3 (the first full pass) ran `passMs`, step 4 ran 500 ms, the guest
 * was paused 40 ms (step 5's pause to step 7's resume); `pass` and `sync` are steps 3 and 4's stats.
 */
function completed(passMs: number, pass?: JsonValue, sync?: JsonValue): SagaState {
  const s = createSaga(ref, T0);
  s.startedAt = T0;
  s.endedAt = T0 + 5_000;
  const at = (n: number, start: number, ms: number) => Object.assign(s.steps[n - 1], { startedAt: T0 + start, completedAt: T0 + start + ms });
  at(3, 1_000, passMs);
  at(4, 1_000 + passMs, 500);
  if (pass !== undefined) s.steps[2].result = { stats: pass };
  if (sync !== undefined) s.steps[3].result = { stats: sync };
  s.steps[4].result = { pausedAt: new Date(T0 + 4_000).toISOString() };
  s.steps[6].result = { resumedAt: new Date(T0 + 4_040).toISOString() };
  return s;
}

describe('measuredByMigration: what a completed migration tells of its two hosts', () => {
  it('takes the link from the rate the agent measured while the stream sent, and splits the rest of the time', () => {
    const m = measuredByMigration(completed(2_000, { bytesTransferred: 512 * MiB, bandwidthBytesPerSec: 400 * MiB }, { remainingBytes: 4 * MiB }), 1_024);
    expect(m).toEqual({
      bytesPerSec: 400 * MiB,
      passMs: 2_000,
      // 40 ms of pause, 10 ms of which copied the last 4 MiB at 400 MiB/s
      switchoverFixedMs: 30,
      // 5 s in all, less the pass, step 4 and the pause
      setupMs: 5_000 - 2_000 - 500 - 40,
    });
  });

  it('without the agent\'s rate, what the pass sent over its duration; without what it sent, the memory', () => {
    expect(measuredByMigration(completed(2_000, { bytesTransferred: 800 * MiB }), 1_024)?.bytesPerSec).toBe(400 * MiB);
    expect(measuredByMigration(completed(2_000), 1_024)?.bytesPerSec).toBe(512 * MiB);
  });

  it('no link from a pass that sent too little to measure it (an idle guest\'s zero pages): the pause keeps all its cost', () => {
    const m = measuredByMigration(completed(200, { bytesTransferred: 20 * MiB, bandwidthBytesPerSec: 100 * MiB }, { remainingBytes: 4 * MiB }), 2_048);
    expect(m?.bytesPerSec).toBeUndefined();
    expect(m?.switchoverFixedMs).toBe(40);
  });

  it('no link from a stream that ran at its policy\'s cap: it measured the cap', () => {
    const capped = completed(2_000, { bytesTransferred: 400 * MiB, bandwidthBytesPerSec: 195 * MiB });
    expect(measuredByMigration(capped, 1_024, 200)?.bytesPerSec).toBeUndefined();
    // well under the cap, the rate is the link's
    expect(measuredByMigration(capped, 1_024, 1_000)?.bytesPerSec).toBe(195 * MiB);
  });

  it('nothing from a migration whose first pass has no duration', () => {
    const s = completed(2_000);
    s.steps[2].startedAt = null;
    expect(measuredByMigration(s, 1_024)).toBeNull();
  });
});
