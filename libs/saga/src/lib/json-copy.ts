/**
 * A deep copy of plain JSON data (objects, arrays, strings, numbers, booleans, null; a property whose value is
 * `undefined` is kept as such). What `evolve` drafts on: a saga is JSON, and this copies one about four times
 * faster than `structuredClone`, which serializes through V8's value serializer (3.5 KB saga: 4 against 16 µs,
 * once per event the scheduler applies).
 */
export function copyJson<T>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(copyJson) as T;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) copy[key] = copyJson((value as Record<string, unknown>)[key]);
  return copy as T;
}
