import fc from 'fast-check';
import { QueuedMigration, selectAdmissible, SlotHolder } from './admission';

const limits = { maxOutboundPerHost: 2, maxInboundPerHost: 0, maxPerCluster: 5 };
const q = (id: string, sourceHostId: string, targetHostId: string, clusterId = 'c1'): QueuedMigration => ({ id, clusterId, sourceHostId, targetHostId });

describe('selectAdmissible', () => {
  it('given free slots, when migrations wait, then they start in arrival order up to the limits', () => {
    const queued = [q('m1', 'a', 'x'), q('m2', 'a', 'y'), q('m3', 'a', 'z'), q('m4', 'b', 'x')];
    expect(selectAdmissible(queued, [], () => limits)).toEqual(['m1', 'm2', 'm4']);
  });

  it('given a busy source host, when a later migration uses another host, then it is not held back', () => {
    const active: SlotHolder[] = [q('r1', 'a', 'x'), q('r2', 'a', 'y')];
    expect(selectAdmissible([q('m1', 'a', 'z'), q('m2', 'b', 'z')], active, () => limits)).toEqual(['m2']);
  });

  it('given a cluster limit, when it is reached, then nothing more starts in that cluster but other clusters go on', () => {
    const active = Array.from({ length: 5 }, (_, i) => q(`r${i}`, `h${i}`, 'x'));
    expect(selectAdmissible([q('m1', 'k', 'y'), q('m2', 'k2', 'y', 'c2')], active, () => limits)).toEqual(['m2']);
  });

  it('given an inbound limit, when the target is full, then the migration waits', () => {
    const l = { ...limits, maxInboundPerHost: 1 };
    expect(selectAdmissible([q('m1', 'a', 'x'), q('m2', 'b', 'x'), q('m3', 'c', 'y')], [], () => l)).toEqual(['m1', 'm3']);
  });

  it('given 0 for a limit, then that limit is unlimited', () => {
    const unlimited = { maxOutboundPerHost: 0, maxInboundPerHost: 0, maxPerCluster: 0 };
    const queued = Array.from({ length: 50 }, (_, i) => q(`m${i}`, 'a', 'x'));
    expect(selectAdmissible(queued, [], () => unlimited)).toHaveLength(50);
  });

  it('never exceeds any limit, whatever is queued and running', () => {
    const hosts = ['a', 'b', 'c', 'd'];
    const arb = fc.record({ clusterId: fc.constantFrom('c1', 'c2'), sourceHostId: fc.constantFrom(...hosts), targetHostId: fc.constantFrom(...hosts) });
    fc.assert(
      fc.property(fc.array(arb, { maxLength: 10 }), fc.array(arb, { maxLength: 40 }), fc.nat(3), fc.nat(3), fc.nat(6), (runningRaw, queuedRaw, o, i, c) => {
        const l = { maxOutboundPerHost: o, maxInboundPerHost: i, maxPerCluster: c };
        // what runs already respects the limits (it was admitted under them)
        const running = runningRaw.map((m, n) => ({ ...m, id: `r${n}` }));
        const active: SlotHolder[] = selectAdmissible(running, [], () => l).map((id) => running.find((m) => m.id === id)!);
        const queued = queuedRaw.map((m, n) => ({ ...m, id: `m${n}` }));
        const started = selectAdmissible(queued, active, () => l).map((id) => queued.find((m) => m.id === id)!);
        const count = (key: (m: SlotHolder) => string) => {
          const counts = new Map<string, number>();
          for (const m of [...active, ...started]) counts.set(key(m), (counts.get(key(m)) ?? 0) + 1);
          return Math.max(0, ...counts.values());
        };
        if (o > 0) expect(count((m) => m.sourceHostId)).toBeLessThanOrEqual(o);
        if (i > 0) expect(count((m) => m.targetHostId)).toBeLessThanOrEqual(i);
        if (c > 0) expect(count((m) => m.clusterId)).toBeLessThanOrEqual(c);
      }),
    );
  });
});
