import { usageError } from './exit-codes';

// Pure parsers of argument values: each refuses with a usage error (exit 2) that says what is expected.

export function parsePositiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw usageError(`${name} must be a positive integer, not ${JSON.stringify(value)}`);
  return n;
}

/** `imc set` takes a mode name, `off` (host passthrough) or `unset` (null: the hosts' common mode). */
export function parseImcMode(value: string): string | null {
  const v = value.trim();
  if (v === '') throw usageError('the mode is empty: give a mode name (e.g. Haswell), "off" or "unset"');
  return v.toLowerCase() === 'unset' ? null : v;
}

export { isUuid } from '@flexmig/contracts';

/** `--types a,b,host.*` as the API's comma-separated list; refuses empty names. */
export function parseEventTypes(value: string): string {
  const names = value.split(',').map((n) => n.trim());
  if (names.some((n) => n === '' || /\s/.test(n))) throw usageError(`--types ${JSON.stringify(value)}: give comma-separated event types or families, e.g. migration.completed,host.*`);
  return names.join(',');
}

/** `--since`: the id of a live event (a positive integer, as the stream sends them). */
export function parseEventId(value: string): string {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value)) throw usageError(`--since ${JSON.stringify(value)}: give the id of an event (a positive integer, the id a stream printed), or 0 for every event kept`);
  return value;
}
