import { MigrationPlacementSchema, PASSED_OVER_LISTED } from '@flexmig/contracts';
import { placementView } from './placement-view';

const named = (n: number) => Array.from({ length: n }, (_, i) => ({ hostId: `h${String(i).padStart(4, '0')}`, reason: 'eligible, but more loaded' }));

describe('placementView', () => {
  it('shows a placement stored with its counts as it is', () => {
    const stored = { chosen: 'a', reason: 'least loaded', passedOver: named(3), passedOverCount: 3, passedOverByRule: { 'less-suitable': 3 } };
    const view = placementView(stored);
    expect(view).toEqual(stored);
    expect(MigrationPlacementSchema.safeParse(view).success).toBe(true);
  });

  it('cuts a row from before the counts (every host named) to the API length, counts what it named, and says the rules are unknown', () => {
    const view = placementView({ chosen: 'a', reason: 'least loaded', passedOver: named(999) });
    expect(view.passedOver).toEqual(named(PASSED_OVER_LISTED));
    expect(view.passedOverCount).toBe(999);
    expect(view.passedOverByRule).toBeNull();
    expect(MigrationPlacementSchema.safeParse(view).success).toBe(true);
  });
});
