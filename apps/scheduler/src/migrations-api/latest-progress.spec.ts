import { randomUUID } from 'node:crypto';
import type { MigrationProgress } from '@flexmig/contracts';
import { LatestProgress } from './latest-progress';

const sample = (migrationId: string, percent = 50, hostId = 'host-a'): MigrationProgress => ({
  migrationId,
  vmId: randomUUID(),
  hostId,
  step: 3,
  pass: 1,
  percent,
  totalBytes: 100,
  transferredBytes: percent,
  remainingBytes: 100 - percent,
  dirtyRateBytesPerSec: 0,
  bandwidthBytesPerSec: 1,
  expectedDowntimeMs: 1,
  throttlePct: 0,
  at: new Date(0).toISOString(),
});

describe('LatestProgress: the latest sample of each migration, for a while', () => {
  let t = 0;
  const clock = () => t;
  beforeEach(() => {
    t = 0;
  });

  it('keeps the newest sample of a migration and forgets it keptMs after it arrived', () => {
    const kept = new LatestProgress(1_000, 100, clock);
    const id = randomUUID();
    kept.record(sample(id, 10));
    t = 500;
    kept.record(sample(id, 60));
    expect(kept.latest(id, 'host-a')?.percent).toBe(60);
    t = 1_500; // 1,000 after the newest sample: still kept
    expect(kept.latest(id, 'host-a')?.percent).toBe(60);
    t = 1_501;
    expect(kept.latest(id, 'host-a')).toBeUndefined();
    expect(kept.latest(randomUUID(), 'host-a')).toBeUndefined();
  });

  it("drops the stale samples as new ones arrive, a migration's newer sample counting from its own arrival", () => {
    const kept = new LatestProgress(1_000, 100, clock);
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    kept.record(sample(a));
    t = 100;
    kept.record(sample(b));
    t = 900;
    kept.record(sample(a)); // a is the newest now: b is the oldest
    t = 1_050;
    kept.record(sample(c)); // b (100) is not yet stale
    expect(kept.size).toBe(3);
    t = 1_101;
    kept.record(sample(c)); // b (100) stale; a (900) and c kept
    expect(kept.size).toBe(2);
    expect(kept.latest(b, 'host-a')).toBeUndefined();
    expect(kept.latest(a, 'host-a')).toBeDefined();
    t = 2_200;
    kept.record(sample(randomUUID())); // a (900) and c (1,101) stale
    expect(kept.size).toBe(1);
  });

  it("keeps each host's latest sample of a migration apart", () => {
    const kept = new LatestProgress(1_000, 100, clock);
    const id = randomUUID();
    kept.record(sample(id, 30, 'host-a'));
    kept.record(sample(id, 90, 'host-x'));
    expect(kept.latest(id, 'host-a')?.percent).toBe(30);
    expect(kept.latest(id, 'host-x')?.percent).toBe(90);
    expect(kept.latest(id, 'host-b')).toBeUndefined();
  });

  it('keeps at most maxEntries samples, the oldest dropped first', () => {
    const kept = new LatestProgress(60_000, 3, clock);
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const id of ids) {
      kept.record(sample(id));
      t += 1;
    }
    expect(kept.size).toBe(3);
    expect(ids.map((id) => kept.latest(id, 'host-a') !== undefined)).toEqual([false, false, true, true, true]);
  });
});
