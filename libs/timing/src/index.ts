/**
 * @flexmig/timing — how long to wait before trying again (pure), the one way to wait, and how many at
 * once (Gate), reads shared by callers who ask together (FreshReads), a job many ask for run by one loop (Coalesced), a recurring failure said once in a while (Repeats). Imports nothing, so the pure libraries may use it. See README.md.
 */
export * from './backoff';
export * from './sleep';
export * from './gate';
export * from './fresh-reads';
export * from './coalesced';
export * from './repeats';
