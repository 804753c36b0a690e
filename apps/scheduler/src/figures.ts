import { elapsedMs, type JsonValue, type SagaState } from '@flexmig/saga';

interface ReplyLike {
  stats?: { passes?: number; bytesTransferred?: number; downtimeMs?: number };
  pausedAt?: string;
  resumedAt?: string;
}

const reply = (s: SagaState, step: number): ReplyLike => (s.steps[step - 1]?.result ?? {}) as ReplyLike;

/**
 * Total time, downtime, bytes and passes of a migration, from what the agents reported.
 * Downtime is as the guest saw it: from the source pausing it (step 5) to the target resuming it
 * (step 7), saga overhead included, not the hypervisor's own estimate. That estimate, when the driver
 * reports one (QEMU's `downtime`, step 6), is `hypervisorDowntimeMs`: the difference is what flexmig's
 * own path between the pause and the resume cost the guest in this migration.
 */
export function completionFigures(s: SagaState): { totalTimeMs: number; downtimeMs: number; hypervisorDowntimeMs?: number; bytesTransferred: number; passes: number } {
  const paused = reply(s, 5).pausedAt;
  const resumed = reply(s, 7).resumedAt;
  const state = reply(s, 6).stats ?? reply(s, 4).stats ?? reply(s, 3).stats ?? {};
  const downtimeMs = paused && resumed ? Math.max(0, Date.parse(resumed) - Date.parse(paused)) : (state.downtimeMs ?? 0);
  const hypervisor = reply(s, 6).stats?.downtimeMs;
  return {
    totalTimeMs: elapsedMs(s.startedAt, s.endedAt) ?? 0,
    downtimeMs,
    ...(typeof hypervisor === 'number' && hypervisor >= 0 ? { hypervisorDowntimeMs: hypervisor } : {}),
    bytesTransferred: state.bytesTransferred ?? 0,
    passes: state.passes ?? 0,
  };
}

export type Figures = ReturnType<typeof completionFigures> & Record<string, JsonValue>;
