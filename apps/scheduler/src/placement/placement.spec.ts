import { type Host, PASSED_OVER_LISTED, type Verdict } from '@flexmig/contracts';
import { hostRecord } from '@flexmig/testing';
import { choosePlacement, PlacementInput, PlacementVm } from './placement';

const cluster = '11111111-1111-4111-8111-111111111111';
const otherCluster = '22222222-2222-4222-8222-222222222222';

const host = (id: string, over: Partial<Host> = {}): Host => hostRecord(id, { clusterId: cluster, ...over });

const compatible: Verdict = { compatible: true, baseline: 'Westmere', missing: [], vendorMismatch: false, unchecked: [], reason: 'host has all CPUID features of Westmere' };
const lacking = (...missing: string[]): Verdict => ({
  compatible: false,
  baseline: 'IvyBridge',
  missing,
  vendorMismatch: false,
  unchecked: [],
  reason: `host lacks ${missing.length} feature(s) of IvyBridge: ${missing.join(', ')}`,
});

const vm: PlacementVm = { id: 'vm-1', name: 'web-1', clusterId: cluster, hostId: 'src', memoryMiB: 4_096, vcpus: 2, cpuBaseline: 'Westmere' };

/** Given these hosts (every one CPU compatible unless said otherwise). */
function given(hosts: Host[], over: Partial<PlacementInput> = {}): PlacementInput {
  return {
    vm,
    hosts,
    verdicts: Object.fromEntries(hosts.map((h) => [h.id, compatible])),
    inbound: {},
    ...over,
  };
}

const reasonFor = (p: ReturnType<typeof choosePlacement>, hostId: string) => p.passedOver.find((x) => x.hostId === hostId)?.reason;

describe('choosePlacement', () => {
  describe('each rule passes a host over, with the reason', () => {
    it('a host of another cluster', () => {
      const p = choosePlacement(given([host('src'), host('far', { clusterId: otherCluster }), host('ok')]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'far')).toContain(`not in the VM's cluster ${cluster}`);
    });

    it('the source host itself, even when it is the least loaded', () => {
      const p = choosePlacement(given([host('src'), host('ok', { allocatedMemoryMiB: 30_000 })]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'src')).toBe("it is the VM's source host");
    });

    it('a host that is down', () => {
      const p = choosePlacement(given([host('src'), host('dead', { state: 'down' }), host('ok', { allocatedMemoryMiB: 30_000 })]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'dead')).toContain('down');
    });

    it('a host in maintenance', () => {
      const p = choosePlacement(given([host('src'), host('maint', { maintenance: true }), host('ok', { allocatedMemoryMiB: 30_000 })]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'maint')).toContain('maintenance');
    });

    it('a host whose CPU lacks features of the VM baseline, naming them', () => {
      const hosts = [host('src'), host('old'), host('ok', { allocatedMemoryMiB: 30_000 })];
      const p = choosePlacement(given(hosts, { verdicts: { src: compatible, old: lacking('avx', 'xsave'), ok: compatible } }));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'old')).toContain('avx, xsave');
    });

    it('a host for which no CPU verdict is known', () => {
      const p = choosePlacement(given([host('src'), host('unasked'), host('ok', { allocatedMemoryMiB: 30_000 })], { verdicts: { ok: compatible } }));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'unasked')).toContain('no CPU verdict');
    });

    it('a vendor mismatch, in cpu-compat\'s words', () => {
      const amd: Verdict = { compatible: false, baseline: 'Westmere', missing: [], vendorMismatch: true, unchecked: [], reason: 'Westmere is an Intel baseline and the host is AMD' };
      const p = choosePlacement(given([host('src'), host('amd'), host('ok', { allocatedMemoryMiB: 30_000 })], { verdicts: { amd, ok: compatible } }));
      expect(reasonFor(p, 'amd')).toContain('Intel baseline and the host is AMD');
    });

    it('a host without enough free memory (free = total − allocated)', () => {
      const p = choosePlacement(given([host('src'), host('full', { memoryMiB: 8_192, allocatedMemoryMiB: 6_144 }), host('ok', { allocatedMemoryMiB: 60_000 })]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'full')).toBe('not enough free memory: 2048 MiB free of 8192 MiB, 4096 MiB needed');
    });

    it('a host without enough free vCPUs', () => {
      const p = choosePlacement(given([host('src'), host('busy', { vcpus: 8, allocatedVcpus: 7 }), host('ok', { allocatedMemoryMiB: 30_000 })]));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'busy')).toBe('not enough free vCPUs: 1 free of 8, 2 needed');
    });

    it("vCPUs and memory up to the cluster's allocation ratios, and the reason says how the capacity came about", () => {
      // 2 vCPUs × 4 = 8: 6 held, 2 needed fits; memory 8 GiB × 1.5 = 12 GiB: 8 held, 4 needed fits
      const over = host('over', { vcpus: 2, cpuAllocationRatio: 4, allocatedVcpus: 6, memoryMiB: 8_192, memoryAllocationRatio: 1.5, allocatedMemoryMiB: 8_192 });
      expect(choosePlacement(given([host('src'), over])).chosen).toBe('over');
      const full = host('full', { vcpus: 2, cpuAllocationRatio: 4, allocatedVcpus: 7 });
      expect(reasonFor(choosePlacement(given([host('src'), full, host('ok')])), 'full')).toBe('not enough free vCPUs: 1 free of 8 (2 × 4), 2 needed');
      const tight = host('tight', { memoryMiB: 8_192, memoryAllocationRatio: 1.25, allocatedMemoryMiB: 8_192 });
      expect(reasonFor(choosePlacement(given([host('src'), tight, host('ok')])), 'tight')).toBe('not enough free memory: 2048 MiB free of 10240 MiB (8192 × 1.25), 4096 MiB needed');
    });

    it('a host over its capacity after its ratios were lowered takes nothing, and says 0 free', () => {
      const lowered = host('lowered', { vcpus: 2, cpuAllocationRatio: 1, allocatedVcpus: 9 });
      expect(reasonFor(choosePlacement(given([host('src'), lowered, host('ok')])), 'lowered')).toBe('not enough free vCPUs: 0 free of 2, 2 needed');
    });

    it('memory promised to admitted migrations that have not reserved yet counts as taken', () => {
      const hosts = [host('src'), host('promised', { memoryMiB: 8_192 }), host('ok', { allocatedMemoryMiB: 60_000 })];
      const p = choosePlacement(given(hosts, { inbound: { promised: { migrations: 2, promisedMemoryMiB: 6_144, promisedVcpus: 2 } } }));
      expect(p.chosen).toBe('ok');
      expect(reasonFor(p, 'promised')).toContain('promised to 2 incoming migration(s)');
    });

    it('a host that fits exactly is eligible', () => {
      const p = choosePlacement(given([host('src'), host('exact', { memoryMiB: 8_192, allocatedMemoryMiB: 4_096, vcpus: 4, allocatedVcpus: 2 })]));
      expect(p.chosen).toBe('exact');
    });

    it('the first rule a host fails is the one reported', () => {
      const p = choosePlacement(given([host('src'), host('both', { state: 'down', maintenance: true }), host('ok')]));
      expect(reasonFor(p, 'both')).toContain('down');
    });
  });

  describe('least loaded: lowest memory utilisation after placement', () => {
    it('prefers the host that ends emptier in proportion, not in MiB', () => {
      // big: (32768 + 4096) / 131072 = 28.1 %; small: (8192 + 4096) / 32768 = 37.5 %, though it has less held
      const p = choosePlacement(given([host('src'), host('big', { memoryMiB: 131_072, allocatedMemoryMiB: 32_768 }), host('small', { memoryMiB: 32_768, allocatedMemoryMiB: 8_192 })]));
      expect(p.chosen).toBe('big');
      expect(p.reason).toContain('least loaded of 2 eligible host(s)');
      expect(p.reason).toContain('28.1%');
      expect(reasonFor(p, 'small')).toContain('more loaded: memory 37.5% used after placement against 28.1% on big');
    });

    it('counts promised memory in the load', () => {
      const p = choosePlacement(given([host('src'), host('a'), host('b', { allocatedMemoryMiB: 2_048 })], { inbound: { a: { migrations: 1, promisedMemoryMiB: 8_192, promisedVcpus: 1 } } }));
      expect(p.chosen).toBe('b');
    });

    it('on a tie, the host with fewer active inbound migrations', () => {
      const p = choosePlacement(given([host('src'), host('a'), host('b')], { inbound: { a: { migrations: 2 }, b: { migrations: 1 } } }));
      expect(p.chosen).toBe('b');
      expect(p.reason).toContain('fewer active inbound migrations');
      expect(reasonFor(p, 'a')).toContain('more active inbound migrations (2 against 1)');
    });

    it('on a tie of both, the lowest host id, whatever the input order', () => {
      const p = choosePlacement(given([host('c'), host('src'), host('b'), host('a')]));
      expect(p.chosen).toBe('a');
      expect(p.reason).toContain('the lower host id wins');
      expect(reasonFor(p, 'b')).toContain('tie goes to the lower host id');
      expect(p.passedOver.map((x) => x.hostId)).toEqual(['b', 'c', 'src']);
    });

    it('ties are decided exactly, not by rounded percentages', () => {
      // 1/3 of 3 GiB vs 1/3 of 6 GiB after placement: equal, so inbound decides
      const small = { ...vm, memoryMiB: 1_024 };
      const p = choosePlacement({
        ...given([host('src'), host('a', { memoryMiB: 6_144, allocatedMemoryMiB: 1_024 }), host('b', { memoryMiB: 3_072, allocatedMemoryMiB: 0 })]),
        vm: small,
        inbound: { a: { migrations: 1 } },
      });
      expect(p.chosen).toBe('b');
    });
  });

  describe('every other host is explained', () => {
    it('lists each host but the chosen one exactly once, the eligible first, and counts them by rule', () => {
      const hosts = [host('src'), host('a', { allocatedMemoryMiB: 10_000 }), host('b'), host('down', { state: 'down' })];
      const p = choosePlacement(given(hosts));
      expect(p.chosen).toBe('b');
      expect(p.passedOver.map((x) => x.hostId)).toEqual(['a', 'down', 'src']);
      expect(p.passedOverCount).toBe(3);
      expect(p.passedOverByRule).toEqual({ 'less-suitable': 1, down: 1, source: 1 });
    });

    it(`at 1,000 hosts names ${PASSED_OVER_LISTED}: the closest runners-up in rank order, then the ruled out; every host is counted`, () => {
      // h0000 … h0999: the more used the higher the number; every 10th in maintenance, every 7th lacking a CPU feature
      const hosts = [host('src')];
      const verdicts: Record<string, Verdict> = { src: compatible };
      for (let i = 0; i < 1_000; i++) {
        const id = `h${String(i).padStart(4, '0')}`;
        hosts.push(host(id, { allocatedMemoryMiB: 100 + i * 10, maintenance: i % 10 === 0 }));
        verdicts[id] = i % 7 === 0 ? lacking('avx512f') : compatible;
      }
      const p = choosePlacement(given(hosts, { verdicts }));
      expect(p.chosen).toBe('h0001');
      const maintenance = 100;
      const cpu = [...Array(1_000).keys()].filter((i) => i % 7 === 0 && i % 10 !== 0).length;
      expect(p.passedOverByRule).toEqual({ source: 1, maintenance, cpu, 'less-suitable': 1_000 - maintenance - cpu - 1 });
      expect(p.passedOverCount).toBe(1_000);
      expect(Object.values(p.passedOverByRule).reduce((a, b) => a + (b ?? 0), 0)).toBe(p.passedOverCount);
      expect(p.passedOver).toHaveLength(PASSED_OVER_LISTED);
      // h0002 (eligible, next least used), h0003, h0004, h0005, h0006, h0008 (h0007: CPU, h0010: maintenance) …
      expect(p.passedOver.slice(0, 6).map((x) => x.hostId)).toEqual(['h0002', 'h0003', 'h0004', 'h0005', 'h0006', 'h0008']);
      expect(p.passedOver.every((x) => x.reason.startsWith('eligible, but more loaded'))).toBe(true);
      expect(JSON.stringify(p).length).toBeLessThan(10_000);
    });

    it('names the ruled-out hosts after the eligible ones when the eligible leave room', () => {
      const hosts = [host('src'), host('a'), host('b', { allocatedMemoryMiB: 1_000 })];
      for (let i = 0; i < 40; i++) hosts.push(host(`m${String(i).padStart(2, '0')}`, { maintenance: true }));
      const p = choosePlacement(given(hosts));
      expect(p.passedOver.map((x) => x.hostId)).toEqual(['b', ...Array.from({ length: PASSED_OVER_LISTED - 1 }, (_, i) => `m${String(i).padStart(2, '0')}`)]);
      expect(p.passedOverCount).toBe(42);
      expect(p.passedOverByRule).toEqual({ 'less-suitable': 1, maintenance: 40, source: 1 });
    });
  });

  describe('when no host is eligible', () => {
    it('chooses none and names each host with its reason', () => {
      const hosts = [host('src'), host('dead', { state: 'down' }), host('small', { memoryMiB: 2_048 })];
      const p = choosePlacement(given(hosts));
      expect(p.chosen).toBeNull();
      expect(p.reason).toMatch(/^no host can take VM web-1: /);
      for (const id of ['src', 'dead', 'small']) expect(p.reason).toContain(`${id}: `);
      expect(p.passedOver).toHaveLength(3);
    });

    it(`names ${PASSED_OVER_LISTED} hosts and counts the rest by rule when more were passed over`, () => {
      const hosts = [host('src')];
      for (let i = 0; i < 60; i++) hosts.push(host(`h${String(i).padStart(2, '0')}`, i % 2 ? { state: 'down' } : { memoryMiB: 2_048 }));
      const p = choosePlacement(given(hosts));
      expect(p.chosen).toBeNull();
      expect(p.passedOver).toHaveLength(PASSED_OVER_LISTED);
      expect(p.passedOverCount).toBe(61);
      expect(p.passedOverByRule).toEqual({ source: 1, down: 30, memory: 30 });
      expect(p.reason).toMatch(/^no host can take VM web-1: 61 hosts passed over \(source: 1, down: 30, memory: 30\); h00: not enough free memory/);
      expect(p.reason).toMatch(/; and 36 more$/);
    });

    it('says so when the cluster has only the source', () => {
      const p = choosePlacement(given([host('src')]));
      expect(p.chosen).toBeNull();
      expect(p.reason).toContain("src: it is the VM's source host");
    });

    it('says so when the cluster has no host at all', () => {
      expect(choosePlacement(given([])).reason).toContain('its cluster has no host');
    });
  });
});
