/**
 * A cluster's CPU views as rows per group of hosts that read alike (the console's clusters page, the CLI), so
 * that a cluster of 1,000 hosts of a few CPUs is a few rows, each counting its hosts and naming the first
 * few, and nothing is lost.
 */
import type { AutoImcTry } from './http-views';
import type { ClusterImc, ClusterImcPlan, ModeVerification } from './imc';
import { cpuRows, failingLines, planRows, verificationRows } from './host-groups';

type Host = ClusterImc['hosts'][number];
const CPUS = [
  { vendor: 'GenuineIntel', modelName: 'Xeon E5-2680 v2', maxImcMode: 'IvyBridge' },
  { vendor: 'GenuineIntel', modelName: 'Xeon X5670', maxImcMode: 'Westmere' },
  { vendor: 'AuthenticAMD', modelName: 'EPYC 7763', maxImcMode: 'EPYC-Milan' },
];
const id = (i: number) => `host-${String(i).padStart(4, '0')}`;
/** 1,000 hosts, the three CPUs in turn; every 100th host down. */
const fleet: Host[] = Array.from({ length: 1000 }, (_, i) => ({ hostId: id(i), ...CPUS[i % 3]!, state: i % 100 === 7 ? 'down' : 'up' }));

describe("a cluster's hosts in groups", () => {
  it('shows 1,000 hosts of three CPUs as three rows that count every host, their states, and name the first five', () => {
    const rows = cpuRows(fleet);
    expect(rows.map((r) => r.cells.slice(0, 3))).toEqual([
      ['GenuineIntel Xeon E5-2680 v2', 'IvyBridge', '334'],
      ['GenuineIntel Xeon X5670', 'Westmere', '333'],
      ['AuthenticAMD EPYC 7763', 'EPYC-Milan', '333'],
    ]);
    // hosts 7, 107, …, 907 are down: 10 in all, of the CPUs 7 % 3 = 1, 107 % 3 = 2, 207 % 3 = 0, …
    const down = fleet.filter((h) => h.state === 'down');
    const states = rows.map((r) => r.cells[3]);
    expect(states).toEqual(CPUS.map((c) => {
      const n = down.filter((h) => h.modelName === c.modelName).length;
      const all = fleet.filter((h) => h.modelName === c.modelName).length;
      return `${all - n} up, ${n} down`;
    }));
    expect(rows[0]!.cells[4]).toBe('host-0000, host-0003, host-0006, host-0009, host-0012 and 329 more');
    expect(new Set(rows.map((r) => r.key)).size).toBe(3);
  });

  it('keeps apart hosts of one model that pass different modes (a BIOS or a microcode that hides features)', () => {
    const hosts: Host[] = [
      { hostId: 'a', ...CPUS[0]!, state: 'up' },
      { hostId: 'b', ...CPUS[0]!, maxImcMode: 'SandyBridge', state: 'up' },
      { hostId: 'c', ...CPUS[0]!, state: 'maintenance' },
    ];
    expect(cpuRows(hosts).map((r) => r.cells)).toEqual([
      ['GenuineIntel Xeon E5-2680 v2', 'IvyBridge', '2', '1 up, 1 maintenance', 'a, c'],
      ['GenuineIntel Xeon E5-2680 v2', 'SandyBridge', '1', '1 up', 'b'],
    ]);
  });

  it("groups the plan's hosts by their own mode and the mode without any one of them, with the IMC view's states", () => {
    // two Westmere hosts: without either, the other keeps the mode; one IvyBridge host holds nothing down
    const plan: ClusterImcPlan = {
      clusterId: 'c1',
      mode: 'Westmere',
      reason: 'the oldest CPU',
      holdingDown: ['w1', 'w2'],
      hostModes: [
        { hostId: 'i1', mode: 'IvyBridge' },
        { hostId: 'w1', mode: 'Westmere' },
        { hostId: 'w2', mode: 'Westmere' },
        { hostId: 'x9', mode: null },
      ],
      withoutHost: [
        { hostId: 'i1', mode: 'Westmere' },
        { hostId: 'w1', mode: 'Westmere' },
        { hostId: 'w2', mode: 'Westmere' },
      ],
    };
    const hosts = [
      { hostId: 'i1', ...CPUS[0]!, state: 'up' },
      { hostId: 'w1', ...CPUS[1]!, state: 'up' },
      { hostId: 'w2', ...CPUS[1]!, state: 'down' },
    ];
    expect(planRows(plan, hosts).map((r) => r.cells)).toEqual([
      ['IvyBridge', 'Westmere', '1', '1 up', 'i1'],
      ['Westmere', 'Westmere', '2', '1 up, 1 down', 'w1, w2'],
      // a host the plan names and the IMC view does not (registered between the two reads), with no mode of its own
      ['(none)', '', '1', '1 unknown', 'x9'],
    ]);
    // before the cluster's CPU view has loaded: the groups, without states
    expect(planRows(plan, undefined).map((r) => r.cells[3])).toEqual(['', '', '']);
  });

  it('the plan of 1,000 hosts of three CPUs is three rows', () => {
    const plan: ClusterImcPlan = {
      clusterId: 'c1',
      mode: 'Westmere',
      reason: '',
      holdingDown: [],
      hostModes: fleet.map((h) => ({ hostId: h.hostId, mode: h.maxImcMode })),
      withoutHost: fleet.map((h) => ({ hostId: h.hostId, mode: 'Westmere' })),
    };
    const rows = planRows(plan, fleet);
    expect(rows.map((r) => [r.cells[0], r.cells[2]])).toEqual([['IvyBridge', '334'], ['Westmere', '333'], ['EPYC-Milan', '333']]);
  });

  it('groups a verification by verdict: those that pass, and those that fail for one reason', () => {
    const v: ModeVerification = {
      mode: 'IvyBridge',
      pass: false,
      hosts: [
        { hostId: 'a', pass: true, missing: [], vendorMismatch: false, reason: '' },
        { hostId: 'b', pass: false, missing: ['f16c', 'rdrand'], vendorMismatch: false, reason: 'lacks 2' },
        { hostId: 'c', pass: true, missing: [], vendorMismatch: false, reason: '' },
        { hostId: 'd', pass: false, missing: [], vendorMismatch: true, reason: 'AMD' },
        { hostId: 'e', pass: false, missing: ['f16c', 'rdrand'], vendorMismatch: false, reason: 'lacks 2' },
        { hostId: 'f', pass: false, missing: [], vendorMismatch: false, reason: 'down' },
      ],
    };
    expect(verificationRows(v).map((r) => r.cells)).toEqual([
      ['yes', '', '2', 'a, c'],
      ['no', 'lacks f16c, rdrand', '2', 'b, e'],
      ['no', 'another vendor', '1', 'd'],
      ['no', 'down', '1', 'f'],
    ]);
  });

  it("auto's failing hosts: a line per what they lack, naming the first five", () => {
    const failing = Array.from({ length: 12 }, (_, i) => ({ hostId: `h${i}`, missing: i < 9 ? ['avx512f'] : ['avx2', 'bmi2'], vendorMismatch: false }));
    const t: AutoImcTry = { mode: 'Skylake-Server', pass: false, failing };
    expect(failingLines(t).map((l) => l.line)).toEqual(['h0, h1, h2, h3, h4 and 4 more: lacks avx512f', 'h9, h10, h11: lacks avx2, bmi2']);
  });
});
