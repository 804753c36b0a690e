import { copyJson } from './json-copy';
import { Saga } from './test-kit';

/** Every object and array reachable from `v`. */
function objectsOf(v: unknown, into = new Set<object>()): Set<object> {
  if (v !== null && typeof v === 'object') {
    into.add(v);
    for (const x of Object.values(v)) objectsOf(x, into);
  }
  return into;
}

describe('copyJson', () => {
  it('copies a saga deeply: equal to it, and sharing no object or array with it', () => {
    const s = Saga.runningAt(4);
    s.fail(4, true);
    const state = { ...s.state, steps: s.state.steps.map((st, i) => (i === 0 ? { ...st, result: { verdict: { ok: true, missing: ['avx512f'] }, n: [1, [2, null]] } } : st)) };
    const copy = copyJson(state);
    expect(copy).toStrictEqual(state);
    const theirs = objectsOf(state);
    for (const o of objectsOf(copy)) expect(theirs.has(o)).toBe(false);
  });

  it('keeps primitives, empty containers and properties set to undefined as they are', () => {
    expect(copyJson(null)).toBeNull();
    expect(copyJson('x')).toBe('x');
    expect(copyJson(0)).toBe(0);
    expect(copyJson(false)).toBe(false);
    expect(copyJson({ a: [], b: {}, c: undefined })).toStrictEqual({ a: [], b: {}, c: undefined });
  });
});
