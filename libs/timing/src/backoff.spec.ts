import fc from 'fast-check';
import { backoffDelayMs, type Backoff } from './backoff';

const doubling: Backoff = { initialMs: 1_000, multiplier: 2, maxMs: 30_000 };

describe('backoffDelayMs', () => {
  it('given no retry yet (n < 1), then there is no wait', () => {
    expect(backoffDelayMs(doubling, 0)).toBe(0);
    expect(backoffDelayMs(doubling, -3)).toBe(0);
  });

  it('given retries, then the delay starts at initialMs and grows by the multiplier until the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelayMs(doubling, n))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs({ initialMs: 200, multiplier: 2.5, maxMs: 5_000 }, n))).toEqual([200, 500, 1_250, 3_125, 5_000]);
  });

  it('given a very long streak, then the delay is the cap (no overflow)', () => {
    expect(backoffDelayMs(doubling, 10_000)).toBe(30_000);
  });

  it('given no jitter, then random is never called (the saga stays deterministic)', () => {
    const random = jest.fn(() => 0.5);
    backoffDelayMs(doubling, 3, random);
    backoffDelayMs({ ...doubling, jitter: 0 }, 3, random);
    expect(random).not.toHaveBeenCalled();
  });

  it('given jitter j, then the delay is d·(1 − j) at random 1⁻ and d at random 0', () => {
    const b = { ...doubling, jitter: 0.2 };
    expect(backoffDelayMs(b, 3, () => 0)).toBe(4_000);
    expect(backoffDelayMs(b, 3, () => 0.5)).toBe(3_600);
    expect(backoffDelayMs(b, 3, () => 0.999_999)).toBe(3_200);
    expect(backoffDelayMs(b, 99, () => 0.999_999)).toBe(24_000);
  });

  it('property: every delay is within [d·(1 − jitter), d] and never above the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 1, max: 4, noNaN: true }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (initialMs, multiplier, maxMs, jitter, n, r) => {
          const b = { initialMs, multiplier, maxMs, jitter };
          const d = backoffDelayMs({ initialMs, multiplier, maxMs }, n);
          const jittered = backoffDelayMs(b, n, () => r);
          expect(d).toBeLessThanOrEqual(maxMs);
          expect(d).toBeGreaterThanOrEqual(Math.min(initialMs, maxMs));
          expect(jittered).toBeLessThanOrEqual(d);
          expect(jittered).toBeGreaterThanOrEqual(Math.floor(d * (1 - jitter)));
        },
      ),
    );
  });

  it('property: without jitter the delay never shrinks from one retry to the next', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.double({ min: 1, max: 4, noNaN: true }), fc.integer({ min: 1, max: 600_000 }), fc.integer({ min: 1, max: 200 }), (initialMs, multiplier, maxMs, n) => {
        const b = { initialMs, multiplier, maxMs };
        expect(backoffDelayMs(b, n + 1)).toBeGreaterThanOrEqual(backoffDelayMs(b, n));
      }),
    );
  });
});
