/**
 * @flexmig/migration-model: the physics of live migration (pre-copy, post-copy) and the convergence
 * policy that steers it. Pure: no clock, no I/O. See README.md for the equations and the rules.
 */
export * from './constants';
export * from './schemas';
export * from './precopy-model';
export * from './precopy-simulation';
export * from './convergence-policy';
export * from './simulate-with-policy';
export * from './predict';
