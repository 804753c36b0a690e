import { type MigrationPlacement, PASSED_OVER_LISTED } from '@flexmig/contracts';
import type { StoredPlacement } from '../entities';

/**
 * A stored placement as the API shows it. Rows from before the hosts passed over were counted name every
 * one of them, by host id, without counts: they are cut to the API's length, their count is the length
 * of what they named, and their counts by rule are unknown (null).
 */
export function placementView(p: StoredPlacement): MigrationPlacement {
  return {
    chosen: p.chosen,
    reason: p.reason,
    passedOver: p.passedOver.slice(0, PASSED_OVER_LISTED),
    passedOverCount: p.passedOverCount ?? p.passedOver.length,
    passedOverByRule: p.passedOverByRule ?? null,
  };
}
