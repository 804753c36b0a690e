import type { DataSource } from 'typeorm';
import { CpuVerdict, ListPlacementHosts, PASSED_OVER_LISTED, type PlacementFor, type PlacementHost, type PlacementUnlisted, type Verdict, type Vm } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { CANDIDATES_PER_CPU, HOSTS_READ_MAX_AGE_MS, PlacementService } from './placement.service';

const turn = () => new Promise<void>((r) => setImmediate(r));
const c1 = '11111111-1111-4111-8111-111111111111';
const c2 = '22222222-2222-4222-8222-222222222222';

const host = (id: string, clusterId: string): PlacementHost => ({
  id,
  clusterId,
  memoryMiB: 16_384,
  vcpus: 16,
  allocatedMemoryMiB: 0,
  allocatedVcpus: 0,
  cpuAllocationRatio: 4,
  memoryAllocationRatio: 1,
  capacityMemoryMiB: 16_384,
  capacityVcpus: 64,
  driver: 'sim',
  state: 'up',
  maintenance: false,
  cpu: { vendor: 'Intel', featureSet: 'fs1' },
});

const vm = (n: number, clusterId: string, hostId: string): Vm => ({
  id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  name: `vm-${n}`,
  clusterId,
  hostId,
  memoryMiB: 8_192,
  vcpus: 1,
  cpuBaseline: 'Westmere',
  state: 'running',
  createdAt: '2026-12-01T20:00:00.000Z',
  updatedAt: '2026-12-01T20:00:00.000Z',
});

const compatible: Verdict = { compatible: true, baseline: 'Westmere', missing: [], vendorMismatch: false, unchecked: [], reason: 'compatible' };

/** An inventory from before bounded placements: a request with `for` gets a page without `unlisted`. */
const olderInventoryAnswer = { hosts: [], featureSets: {}, nextCursor: null };

/**
 * Inventory's placement list held until released by hand (so the test decides what is in flight when), and
 * the scheduler's inbound load answered per call from `inbound`. The inventory does not bound a placement's
 * read (`for`), so every placement reads the whole list: what these tests are about.
 */
function fakes(inbound: () => Record<string, number>[]) {
  const lists: { clusterId: string; release: () => void }[] = [];
  const control = { inventoryDown: false };
  const bus = {
    request: (c: { subject: string }, body: { clusterId: string; for?: unknown }) => {
      if (c.subject === CpuVerdict.subject) return Promise.resolve(compatible);
      if (c.subject !== ListPlacementHosts.subject) throw new Error(`unexpected request ${c.subject}`);
      if (body.for) return Promise.resolve(olderInventoryAnswer);
      if (control.inventoryDown) return Promise.reject(new Error('inventory did not answer'));
      const hosts = body.clusterId === c1 ? [host('a', c1), host('b', c1), host('src', c1)] : [host('x', c2), host('src2', c2)];
      return new Promise((resolve) => lists.push({ clusterId: body.clusterId, release: () => resolve({ hosts, featureSets: { fs1: ['sse2'] }, nextCursor: null }) }));
    },
  } as unknown as NatsBus;
  const db = { query: async () => inbound() } as unknown as DataSource;
  return { lists, control, service: new PlacementService(db, bus) };
}

describe('PlacementService: with an inventory that does not bound the read, placements asked together share the read of their cluster', () => {
  it('shares one read among the placements that arrive while one is in flight, never the read in flight, and keeps clusters apart', async () => {
    const { lists, service } = fakes(() => []);
    const first = service.place(vm(1, c1, 'src'));
    await turn();
    expect(lists.map((l) => l.clusterId)).toEqual([c1]);
    const together = [service.place(vm(2, c1, 'src')), service.place(vm(3, c1, 'src')), service.place(vm(4, c1, 'src'))];
    const other = service.place(vm(5, c2, 'src2'));
    await turn();
    // the three wait for the read in flight to end: it started before they asked
    expect(lists.map((l) => l.clusterId)).toEqual([c1, c2]);
    lists[0]!.release();
    await expect(first).resolves.toMatchObject({ chosen: 'a' });
    await turn();
    expect(lists.map((l) => l.clusterId)).toEqual([c1, c2, c1]);
    lists[2]!.release();
    lists[1]!.release();
    await expect(Promise.all(together)).resolves.toMatchObject([{ chosen: 'a' }, { chosen: 'a' }, { chosen: 'a' }]);
    await expect(other).resolves.toMatchObject({ chosen: 'x' });
    expect(lists).toHaveLength(3);
  });

  it("reads each placement's own inbound load: one placement's promise is the next one's, with the same hosts read", async () => {
    // the second read of the migrations table sees the first placement's migration admitted to `a`
    const loads = [[], [{ target_host_id: 'a', migrations: 1, memory: 8_192, vcpus: 1 }]];
    let call = 0;
    const { lists, service } = fakes(() => loads[Math.min(call++, 1)] as unknown as Record<string, number>[]);
    const first = service.place(vm(1, c1, 'src'));
    await turn();
    const second = service.place(vm(2, c1, 'src'));
    lists[0]!.release();
    await expect(first).resolves.toMatchObject({ chosen: 'a' });
    await turn();
    lists[1]!.release();
    // `a` and `b` are equally empty in inventory's list; what `a` was promised sends the second VM to `b`
    await expect(second).resolves.toMatchObject({ chosen: 'b' });
  });

  it('fails the placements that shared a failed read with its error, and the next placement reads again', async () => {
    const { lists, control, service } = fakes(() => []);
    const first = service.place(vm(1, c1, 'src'));
    await turn();
    control.inventoryDown = true;
    const together = [service.place(vm(2, c1, 'src')), service.place(vm(3, c1, 'src'))];
    lists[0]!.release();
    await expect(first).resolves.toMatchObject({ chosen: 'a' });
    for (const p of together) await expect(p).rejects.toThrow('inventory did not answer');
    control.inventoryDown = false;
    const after = service.place(vm(4, c1, 'src'));
    await turn();
    expect(lists).toHaveLength(2);
    lists[1]!.release();
    await expect(after).resolves.toMatchObject({ chosen: 'a' });
  });
});

describe('PlacementService: an evacuation\'s placements (hostsReadSince)', () => {
  afterEach(() => jest.restoreAllMocks());

  it('share the read of the hosts made since the moment given, one after another, each with its own inbound load', async () => {
    const clock = jest.spyOn(Date, 'now').mockReturnValue(10_000);
    const loads = [[], [{ target_host_id: 'a', migrations: 1, memory: 8_192, vcpus: 1 }]];
    let call = 0;
    const { lists, service } = fakes(() => loads[Math.min(call++, 1)] as unknown as Record<string, number>[]);
    const first = service.place(vm(1, c1, 'src'), { hostsReadSince: 10_000 });
    await turn();
    lists[0]!.release();
    await expect(first).resolves.toMatchObject({ chosen: 'a' });
    clock.mockReturnValue(10_400);
    // no second read of the hosts; the migrations table, read again, sends the second VM to `b`
    await expect(service.place(vm(2, c1, 'src'), { hostsReadSince: 10_000 })).resolves.toMatchObject({ chosen: 'b' });
    expect(lists).toHaveLength(1);
    // a placement without it never gets an answered read
    const plain = service.place(vm(3, c1, 'src'));
    await turn();
    expect(lists).toHaveLength(2);
    lists[1]!.release();
    await plain;
  });

  it(`never share a read older than ${HOSTS_READ_MAX_AGE_MS} ms, nor one that started before the moment given`, async () => {
    const clock = jest.spyOn(Date, 'now').mockReturnValue(10_000);
    const { lists, service } = fakes(() => []);
    const first = service.place(vm(1, c1, 'src'), { hostsReadSince: 10_000 });
    await turn();
    lists[0]!.release();
    await first;
    clock.mockReturnValue(10_000 + HOSTS_READ_MAX_AGE_MS + 1);
    const old = service.place(vm(2, c1, 'src'), { hostsReadSince: 10_000 });
    await turn();
    expect(lists).toHaveLength(2);
    lists[1]!.release();
    await old;
    const afterIt = service.place(vm(3, c1, 'src'), { hostsReadSince: 10_000 + HOSTS_READ_MAX_AGE_MS + 2 });
    await turn();
    expect(lists).toHaveLength(3);
    lists[2]!.release();
    await afterIt;
  });
});

describe('PlacementService: CPU verdicts', () => {
  it('asks one verdict per distinct CPU, and gives each host the verdict of its own', async () => {
    const hosts = [host('a', c1), { ...host('b', c1), cpu: { vendor: 'Intel', featureSet: 'fs2' } }, host('c', c1), { ...host('d', c1), cpu: { vendor: 'Intel', featureSet: 'fs2' } }, host('src', c1)];
    const asked: string[][] = [];
    const bus = {
      request: async (c: { subject: string }, body: { for?: unknown; target: { features: string[] } }) => {
        if (c.subject === ListPlacementHosts.subject) return body.for ? olderInventoryAnswer : { hosts, featureSets: { fs1: ['sse2', 'avx512f'], fs2: ['sse2'] }, nextCursor: null };
        asked.push(body.target.features);
        const lacks = !body.target.features.includes('avx512f');
        return lacks ? { ...compatible, compatible: false, missing: ['avx512f'], reason: 'host lacks 1 feature(s) of Westmere: avx512f' } : compatible;
      },
    } as unknown as NatsBus;
    const service = new PlacementService({ query: async () => [] } as unknown as DataSource, bus);
    const p = await service.place(vm(1, c1, 'src'));
    expect(asked).toHaveLength(2);
    expect(p.chosen).toBe('a');
    expect(p.passedOverByRule).toEqual({ 'less-suitable': 1, cpu: 2, source: 1 });
    expect(p.passedOver.find((x) => x.hostId === 'd')?.reason).toContain('avx512f');
  });
});

describe('PlacementService: a bounded read (`for`)', () => {
  const fs2 = { vendor: 'Intel' as const, featureSet: 'fs2' };
  /** Inventory answers a placement with `listed` and `unlisted`; the verdicts say fs2 lacks avx512f. */
  function bounded(listed: PlacementHost[], unlisted: PlacementUnlisted, inbound: Record<string, number>[] = []) {
    const asked: { for?: PlacementFor; cursor?: string }[] = [];
    const bus = {
      request: async (c: { subject: string }, body: { for?: PlacementFor; target: { features: string[] } }) => {
        if (c.subject === ListPlacementHosts.subject) {
          asked.push(body);
          return body.for ? { hosts: listed, featureSets: { fs1: ['sse2', 'avx512f'], fs2: ['sse2'] }, nextCursor: null, unlisted } : { hosts: listed, featureSets: { fs1: ['sse2', 'avx512f'], fs2: ['sse2'] }, nextCursor: null };
        }
        const lacks = !body.target.features.includes('avx512f');
        return lacks ? { ...compatible, compatible: false, missing: ['avx512f'], reason: 'host lacks 1 feature(s) of Westmere: avx512f' } : compatible;
      },
    } as unknown as NatsBus;
    return { asked, service: new PlacementService({ query: async () => inbound } as unknown as DataSource, bus) };
  }
  const none = { source: 0, down: 0, maintenance: 0, memory: 0, vcpus: 0 };

  it('asks for the VM, its source, the hosts it has inbound migrations to and a CPU\'s worth of runners-up, and counts the hosts left out', async () => {
    const listed = [host('a', c1), host('inb', c1), { ...host('f2', c1), cpu: fs2 }];
    const { asked, service } = bounded(listed, { byRule: { ...none, source: 1, down: 3, memory: 2 }, passing: [{ vendor: 'Intel', featureSet: 'fs1', count: 40 }, { ...fs2, count: 7 }] }, [
      { target_host_id: 'inb', migrations: 1, memory: 1_024, vcpus: 1 },
    ] as unknown as Record<string, number>[]);
    const p = await service.place(vm(1, c1, 'src'));
    expect(asked).toEqual([{ clusterId: c1, limit: 1000, for: { memoryMiB: 8_192, vcpus: 1, sourceHostId: 'src', include: ['inb'], perCpu: CANDIDATES_PER_CPU, named: PASSED_OVER_LISTED } }]);
    expect(CANDIDATES_PER_CPU).toBe(PASSED_OVER_LISTED + 1);
    expect(p.chosen).toBe('a');
    // 40 unlisted of fs1 are eligible, less suitable; 7 of fs2 and the listed f2 lack avx512f
    expect(p.passedOverByRule).toEqual({ source: 1, down: 3, memory: 2, cpu: 8, 'less-suitable': 41 });
    expect(p.passedOverCount).toBe(1 + 3 + 2 + 8 + 41);
    expect(p.reason).toMatch(/^a is the least loaded of 42 eligible host\(s\)/);
  });

  it('reads every host when inventory does not bound the read, and when the bounded read counted eligible hosts but chose none', async () => {
    const older = bounded([host('a', c1)], undefined as unknown as PlacementUnlisted);
    await expect(older.service.place(vm(1, c1, 'src'))).resolves.toMatchObject({ chosen: 'a' });
    expect(older.asked.map((b) => b.for !== undefined)).toEqual([true, false]);
    // a listed host of fs2 only, and 5 eligible fs1 hosts counted but not listed: not to be answered "no host"
    const misjudged = bounded([{ ...host('f2', c1), cpu: fs2 }], { byRule: none, passing: [{ vendor: 'Intel', featureSet: 'fs1', count: 5 }] });
    await expect(misjudged.service.place(vm(1, c1, 'src'))).rejects.toMatchObject({ code: 'INSUFFICIENT_CAPACITY' });
    expect(misjudged.asked.map((b) => b.for !== undefined)).toEqual([true, false]);
  });

  it('answers no host with the counts of every host, listed or not', async () => {
    const { service } = bounded([{ ...host('f2', c1), cpu: fs2 }], { byRule: { ...none, down: 2, memory: 30 }, passing: [{ ...fs2, count: 3 }] });
    const e = await service.place(vm(1, c1, 'src')).then(
      () => null,
      (x: { code: string; message: string; details: Record<string, unknown> }) => x,
    );
    expect(e).toMatchObject({ code: 'INSUFFICIENT_CAPACITY', details: { passedOverCount: 36, passedOverByRule: { down: 2, memory: 30, cpu: 4 } } });
    expect(e?.message).toMatch(/36 hosts passed over \(down: 2, memory: 30, cpu: 4\); f2: its CPU cannot run/);
  });

  it('spreads placements asked together that hold their host, until the holds are released; placements that do not hold (predictions) count them but take none', async () => {
    const none0 = { byRule: none, passing: [] };
    const listed = [host('a', c1), host('b', c1), host('c', c1)];
    const { asked, service } = bounded(listed, none0);
    // ten evacuations' first VMs, asked at the same moment: each read the same (empty) inbound load
    const together = await Promise.all([1, 2, 3].map((n) => service.place(vm(n, c1, 'src'), { hold: true })));
    expect(together.map((p) => p.chosen)).toEqual(['a', 'b', 'c']);
    expect(together[1].reason).toMatch(/^b is the least loaded/);
    // a prediction counts the three holds (and asks inventory to list their hosts) but holds nothing
    const predicted = await Promise.all([service.place(vm(4, c1, 'src')), service.place(vm(5, c1, 'src'))]);
    expect(predicted.map((p) => p.chosen)).toEqual(['a', 'a']);
    expect(predicted[0].reason).toContain('1 active inbound migration(s)');
    expect(asked.at(-1)?.for?.include).toEqual(['a', 'b', 'c']);
    // the admissions ended: their rows count from now on (this fake scheduler has none), the holds no longer
    for (const n of [1, 2, 3]) service.release(vm(n, c1, 'src').id);
    const after = await Promise.all([service.place(vm(6, c1, 'src'), { hold: true }), service.place(vm(7, c1, 'src'), { hold: true })]);
    expect(after.map((p) => p.chosen)).toEqual(['a', 'b']);
    expect(asked.at(-1)?.for?.include).toEqual([]);
  });
});
