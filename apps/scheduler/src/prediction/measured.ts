import { BYTES_PER_MIB } from '@flexmig/migration-model';
import { elapsedMs, type SagaState } from '@flexmig/saga';
import { completionFigures } from '../figures';

/** A first pass that sent less than this measured its step's fixed costs more than the link. */
const MIN_LINK_SAMPLE_BYTES = 64 * BYTES_PER_MIB;

/**
 * What a completed migration measured of its two hosts (`measuredByMigration`): the scheduler stores it with
 * the migration when it completes (`migrations.measured`), so that a prediction reads these few numbers,
 * not the whole saga, of each migration it learns from.
 */
export interface MeasuredFigures {
  /** None when the first pass sent too little to measure the link, or ran at its policy's cap. */
  bytesPerSec?: number | undefined;
  passMs: number;
  switchoverFixedMs: number;
  setupMs: number;
}

/**
 * What a completed migration measured of its two hosts: the link (the stream's rate while step 3, the
 * first full pass, sent, as the agent measured it; else what it sent over its duration; none when it sent
 * too little or ran at its policy's cap), the pause's cost besides copying (the guest's downtime less the last dirty bytes at that
 * rate) and the control plane's time outside pre-copy and the pause (the rest of the total).
 */
export function measuredByMigration(
  saga: SagaState,
  memoryMiB: number,
  capMiBps?: number,
): MeasuredFigures | null {
  const dur = (n: number) => {
    const st = saga.steps[n - 1];
    return st ? elapsedMs(st.startedAt, st.completedAt ?? st.endedAt) : null;
  };
  const passMs = dur(3);
  if (!passMs) return null;
  // an idle guest's never-written pages travel as zero-page flags: its memory over the pass would read as a
  // link many times faster than the wire (17 GiB/s for an idle 2 GiB guest here)
  const stats = (saga.steps[2]?.result as { stats?: { bytesTransferred?: number; bandwidthBytesPerSec?: number } } | null | undefined)?.stats;
  const sent = stats?.bytesTransferred;
  // and a pass that sent little measures the step's fixed costs, not the link (38 MiB/s for an idle guest
  // whose link probed 700): no figure then, the prediction probes the link instead. The rate the agent
  // measured while the stream sent is the better figure: the step's duration also holds its fixed costs.
  const measured =
    sent !== undefined && sent > 0 && sent < MIN_LINK_SAMPLE_BYTES
      ? undefined
      : stats?.bandwidthBytesPerSec && stats.bandwidthBytesPerSec > 0
        ? stats.bandwidthBytesPerSec
        : ((sent && sent > 0 ? sent : memoryMiB * BYTES_PER_MIB) * 1000) / passMs;
  // a stream that ran at its policy's cap measured the cap, not the link (the switchover copy runs uncapped)
  const bytesPerSec = measured !== undefined && capMiBps && measured >= 0.9 * capMiBps * BYTES_PER_MIB ? undefined : measured;
  const f = completionFigures(saga);
  const left = (saga.steps[3]?.result as { stats?: { remainingBytes?: number } } | null | undefined)?.stats?.remainingBytes ?? 0;
  return {
    bytesPerSec,
    passMs,
    switchoverFixedMs: Math.max(0, f.downtimeMs - (bytesPerSec ? (left / bytesPerSec) * 1000 : 0)),
    setupMs: Math.max(0, f.totalTimeMs - passMs - (dur(4) ?? 0) - f.downtimeMs),
  };
}

