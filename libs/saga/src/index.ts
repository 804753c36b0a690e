/**
 * @flexmig/saga — the pure state machine of a live migration (DESIGN.md, "The nine migration steps").
 * No I/O: the scheduler loads the state, calls `step(state, event, now)`, persists the new state, then
 * executes the actions and feeds their results back as events. See README.md.
 */
export * from './lib/steps';
export * from './lib/types';
export * from './lib/policy';
export { createSaga, evolve, nextToCompensate } from './lib/evolve';
export { decide, step, deriveActions, inFlightActions } from './lib/decide';
export * from './lib/queries';
