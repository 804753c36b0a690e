/**
 * @flexmig/timing — how long to wait before trying again (pure) and the one way to wait. Imports
 * nothing, so the pure libraries may use it. See README.md.
 */
export * from './backoff';
export * from './sleep';
