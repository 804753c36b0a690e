import { streamBandwidth } from './link-probe';
import { MigrateInfo } from './migrate-info';

const completed = (over: Partial<MigrateInfo> = {}, ram: Partial<NonNullable<MigrateInfo['ram']>> = {}): MigrateInfo =>
  ({ status: 'completed', 'total-time': 62, 'setup-time': 2, ram: { transferred: 60_000_000, ...ram }, ...over }) as MigrateInfo;

describe("streamBandwidth: a probe's bandwidth from QEMU's own figures", () => {
  it('given a completed stream, then the RAM bytes sent over its time less setup', () => {
    expect(streamBandwidth(completed())).toEqual({ bytes: 60_000_000, ms: 60, bytesPerSec: 1_000_000_000 });
  });

  it('given no setup-time, then the whole total-time', () => {
    expect(streamBandwidth(completed({ 'setup-time': undefined }))).toMatchObject({ ms: 62 });
  });

  it('given QEMU 7.2 reporting completed before it filled in total-time (or the bytes), then nothing yet: ask again', () => {
    expect(streamBandwidth(completed({ 'total-time': 0 }))).toBeUndefined();
    expect(streamBandwidth(completed({ 'total-time': undefined }))).toBeUndefined();
    expect(streamBandwidth(completed({}, { transferred: 0 }))).toBeUndefined();
  });

  it('given a stream not completed, then nothing', () => {
    for (const status of ['setup', 'active', 'failed', 'cancelled']) expect(streamBandwidth(completed({ status }))).toBeUndefined();
  });

  it('given a stream that fits in its setup time, then at least 1 ms: a finite figure', () => {
    expect(streamBandwidth(completed({ 'total-time': 2, 'setup-time': 2 }, { transferred: 1000 }))).toEqual({ bytes: 1000, ms: 1, bytesPerSec: 1_000_000 });
  });
});
