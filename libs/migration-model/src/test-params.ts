import { BYTES_PER_MIB } from './constants';
import type { PrecopyParamsInput } from './schemas';

/** Test-only. Physics with no overheads, so that hand-computed figures are the bare geometric series. */
export const bare = (p: Partial<PrecopyParamsInput>): PrecopyParamsInput => ({
  memoryBytes: 1024 * BYTES_PER_MIB,
  dirtyRateBytesPerSec: 0,
  bandwidthBytesPerSec: 100 * BYTES_PER_MIB,
  downtimeLimitMs: 300,
  passOverheadMs: 0,
  deviceStateBytes: 0,
  switchoverFixedMs: 0,
  ...p,
});
