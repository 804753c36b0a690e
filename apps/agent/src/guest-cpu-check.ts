import { GuestCpuCheck, RequestOf, CheckVmCpu } from '@flexmig/contracts';
import { compareGuestCpu, compareGuestCpuid } from '@flexmig/cpu-models';
import { GuestCpuObservation } from './drivers/driver';

/**
 * The answer to a CPU check: what the driver observed, compared (libs/cpu-models) with the baseline
 * inventory recorded for the VM, or, for host-passthrough, with the features of the host it started on.
 */
export function guestCpuCheck(hostId: string, r: RequestOf<typeof CheckVmCpu>, seen: GuestCpuObservation, now = new Date()): GuestCpuCheck {
  const expected = r.expectedFeatures ? { expected: r.expectedFeatures } : {};
  const c =
    seen.source === 'guest'
      ? compareGuestCpuid(r.baseline, seen.rows, { ...expected, accel: seen.accel })
      : compareGuestCpu({ baseline: r.baseline, seen: seen.features, ...expected });
  return {
    vmId: r.vmId,
    hostId,
    ok: c.ok,
    baseline: c.baseline,
    seen: c.seen,
    missing: c.missing,
    extra: c.extra,
    exceptions: c.exceptions,
    unchecked: c.unchecked,
    checkedAt: now.toISOString(),
    source: seen.source,
    ...(seen.source === 'guest' ? { accel: seen.accel, sample: seen.sample } : {}),
  };
}
