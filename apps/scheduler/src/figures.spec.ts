import { createSaga, type JsonValue, type SagaState } from '@flexmig/saga';
import { completionFigures } from './figures';

const ref = { migrationId: '6f1c1a52-6c1e-4d0b-9f51-6d2f3c1b9a00', vmId: '0b7d5a8e-2f43-4c55-8a0e-3f9d1e6c7b11', sourceHostId: 'a', targetHostId: 'b' };
const T0 = Date.UTC(2026, 11, 1, 17, 0, 0);

/** A saga that ran from T0 to T0 + 5 s, with these step results (by step number). */
function ran(results: Record<number, JsonValue>): SagaState {
  const s = createSaga(ref, T0);
  s.startedAt = T0;
  s.endedAt = T0 + 5_000;
  for (const [n, r] of Object.entries(results)) s.steps[Number(n) - 1].result = r;
  return s;
}

describe('completionFigures', () => {
  it('downtime as the guest saw it (pause to resume), beside the hypervisor\'s own figure of step 6', () => {
    const s = ran({
      4: { stats: { passes: 3, bytesTransferred: 100 } },
      5: { pausedAt: '2026-12-01T17:00:03.000Z', doneWith: 4 },
      6: { stats: { passes: 4, bytesTransferred: 120, downtimeMs: 31 }, target: {} },
      7: { resumedAt: '2026-12-01T17:00:03.045Z' },
    });
    expect(completionFigures(s)).toEqual({ totalTimeMs: 5_000, downtimeMs: 45, hypervisorDowntimeMs: 31, bytesTransferred: 120, passes: 4 });
  });

  it('without a figure of the hypervisor (or a bad one), no hypervisorDowntimeMs', () => {
    const base = { 5: { pausedAt: '2026-12-01T17:00:03.000Z' }, 7: { resumedAt: '2026-12-01T17:00:03.010Z' } };
    expect(completionFigures(ran({ ...base, 6: { stats: { passes: 1, bytesTransferred: 1 } } }))).not.toHaveProperty('hypervisorDowntimeMs');
    expect(completionFigures(ran({ ...base, 6: { stats: { downtimeMs: -1 } } }))).not.toHaveProperty('hypervisorDowntimeMs');
    expect(completionFigures(ran({ ...base, 6: { stats: { downtimeMs: '9' } } }))).not.toHaveProperty('hypervisorDowntimeMs');
  });

  it('without both times, the downtime is the hypervisor\'s figure, or 0', () => {
    expect(completionFigures(ran({ 6: { stats: { downtimeMs: 12 } } })).downtimeMs).toBe(12);
    expect(completionFigures(ran({})).downtimeMs).toBe(0);
  });
});
