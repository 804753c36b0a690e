import type { Cluster, EvacuationView, HostListItem, MigrationPrediction, MigrationProgress, MigrationView, ReconciliationFinding, ReconciliationReport, Vm } from '@flexmig/contracts';
import { bashCompletion, zshCompletion } from './completion-script';
import { autoView, clustersNeedHosts, clustersTable, eventLine, evacuationView, hostsNeedVms, hostsTable, imcView, migrationEndView, migrationStartView, planView, predictionText, progressLine, reconciliationView, verificationView } from './views';

const host = (id: string, over: Partial<HostListItem> = {}): HostListItem => ({
  id,
  clusterId: '00000000-0000-4000-8000-000000000001',
  hostname: id,
  cpu: { vendor: 'Intel', modelName: 'Xeon', featureSet: 'f1' },
  maxImcMode: 'Cascadelake-Server',
  memoryMiB: 65536,
  vcpus: 32,
  allocatedMemoryMiB: 2048,
  allocatedVcpus: 2,
  cpuAllocationRatio: 4,
  memoryAllocationRatio: 1,
  capacityMemoryMiB: 65536,
  capacityVcpus: 128,
  driver: 'sim',
  migrationAddress: '127.0.0.1:1',
  state: 'up',
  maintenance: false,
  lastHeartbeatAt: '2026-11-30T00:00:00.000Z',
  registeredAt: '2026-11-30T00:00:00.000Z',
  ...over,
});

describe('views: the API objects as text', () => {
  it("given hosts and VMs, then each host's highest mode, state, maintenance, VM count and capacity", () => {
    const vms = [{ hostId: 'host-a' }, { hostId: 'host-a' }, { hostId: 'host-b' }] as Vm[];
    const lines = hostsTable([host('host-a'), host('host-b', { maxImcMode: null, state: 'down', maintenance: true })], vms).split('\n');
    expect(lines[0]).toMatch(/^HOST\s+HIGHEST MODE\s+CPU\s+STATE\s+MAINTENANCE\s+VMS\s+VCPUS USED\s+MEMORY USED$/);
    expect(lines[1]).toMatch(/^host-a\s+Cascadelake-Server\s+Xeon\s+up\s+no\s+2\s+2\/128\s+2\.0 GiB\/64\.0 GiB$/);
    expect(lines[2]).toMatch(/^host-b\s+\(none\)\s+Xeon\s+down\s+yes\s+1\s/);
  });

  it("given hosts that carry their VM count, then that count, and the VMs are not needed; a host without one needs them", () => {
    const hosts = [host('host-a', { vmCount: 7 }), host('host-b', { vmCount: 0 })];
    expect(hostsNeedVms(hosts)).toBe(false);
    const lines = hostsTable(hosts, [{ hostId: 'host-b' }] as Vm[]).split('\n');
    expect(lines[1]).toMatch(/^host-a\s.*\sno\s+7\s+2\/128\s/);
    expect(lines[2]).toMatch(/^host-b\s.*\sno\s+0\s+2\/128\s/);
    expect(hostsNeedVms([...hosts, host('host-c')])).toBe(true);
  });

  it('given clusters that carry their host count, then that count and the hosts are not needed; without one, the hosts listed in each', () => {
    const cluster = (id: string, over: Partial<Cluster> = {}): Cluster => ({ id, name: `c-${id}`, imcMode: null, cpuAllocationRatio: 4, memoryAllocationRatio: 1, createdAt: '2026-11-30T00:00:00.000Z', ...over });
    const counted = [cluster('1', { hostCount: 1000 }), cluster('2', { hostCount: 0, imcMode: 'Haswell' })];
    expect(clustersNeedHosts(counted)).toBe(false);
    expect(clustersTable(counted).split('\n').slice(1)).toEqual([expect.stringMatching(/^1\s+c-1\s+\(unset\)\s+1000$/), expect.stringMatching(/^2\s+c-2\s+Haswell\s+0$/)]);
    const older = [cluster('1'), cluster('2')];
    expect(clustersNeedHosts(older)).toBe(true);
    expect(clustersTable(older, [{ clusterId: '1' }, { clusterId: '1' }]).split('\n').slice(1)).toEqual([expect.stringMatching(/\s2$/), expect.stringMatching(/\s0$/)]);
  });

  it("given the auto probe's tries, then each mode from the highest down, and what each failing host lacked", () => {
    const text = autoView(
      [
        { mode: 'Icelake-Server', pass: false, failing: [{ hostId: 'host-a', missing: ['avx512vbmi', 'gfni'], vendorMismatch: false }] },
        { mode: 'Cascadelake-Server', pass: true, failing: [] },
      ],
      'Cascadelake-Server',
    );
    expect(text).toBe(' 1. Icelake-Server: 1 host(s) fail\n      host-a: lacks avx512vbmi, gfni\n 2. Cascadelake-Server: every host passes\n\nmode set to Cascadelake-Server');
    expect(autoView([{ mode: 'X', pass: false, failing: [{ hostId: 'h', missing: [], vendorMismatch: true }] }], undefined)).toContain('h: another vendor\n\nno mode fits every host: nothing changed');
  });

  it('given many hosts that fail a mode alike, then a line per what they lacked, naming the first ten', () => {
    const failing = Array.from({ length: 1000 }, (_, i) => ({ hostId: `h${String(i).padStart(4, '0')}`, missing: i % 2 ? ['avx512f'] : ['avx2', 'bmi2'], vendorMismatch: false }));
    const text = autoView([{ mode: 'Skylake-Server', pass: false, failing }], undefined);
    const even = Array.from({ length: 10 }, (_, i) => `h${String(2 * i).padStart(4, '0')}`).join(', ');
    const odd = Array.from({ length: 10 }, (_, i) => `h${String(2 * i + 1).padStart(4, '0')}`).join(', ');
    expect(text.split('\n')).toEqual([
      ' 1. Skylake-Server: 1000 host(s) fail',
      `      ${even} and 490 more: lacks avx2, bmi2`,
      `      ${odd} and 490 more: lacks avx512f`,
      '',
      'no mode fits every host: nothing changed',
    ]);
  });

  it('given a progress sample, then step, pass, bar, rate, remaining and expected downtime on one line', () => {
    const p = { step: 4, pass: 2, percent: 62.5, bandwidthBytesPerSec: 100 * 2 ** 20, remainingBytes: 300 * 2 ** 20, dirtyRateBytesPerSec: 2 ** 20, expectedDowntimeMs: 250, throttlePct: 0 } as MigrationProgress;
    expect(progressLine(p)).toBe('step 4  pass 2  [###################...........]  62.5%  100 MiB/s  300 MiB left  dirty 1.0 MiB/s  expected downtime 250 ms');
    expect(progressLine({ ...p, throttlePct: 30 })).toContain('cpu throttled 30%');
  });

  it('given a prediction, then its figures, its levers and its inputs with origin and age; none, then why', () => {
    const predicted = { converges: false, totalTimeMs: 150_000, downtimeMs: 0, passes: 90, bytesTransferred: 2 ** 33, outcome: 'aborted', switchover: 'none', throttlePct: 0, reason: 'completion timeout' } as const;
    expect(predictionText({ ...predicted, converges: true, switchover: 'precopy', totalTimeMs: 4200, downtimeMs: 180, passes: 3, bytesTransferred: 2 ** 30 })).toBe(
      'converges, total 4.20 s, downtime 180 ms, 3 passes, 1.0 GiB to send',
    );
    const input = (value: number, origin: string, ageMs: number | null) => ({ value, unit: 'bytes/s', origin, measuredAt: null, ageMs, detail: '' });
    const prediction = {
      predicted,
      levers: [{ lever: 'post-copy', policy: { postCopy: true }, predicted: { ...predicted, converges: true, switchover: 'postcopy', totalTimeMs: 9000, downtimeMs: 2 }, cost: 'the VM is lost if the link fails' }],
      inputs: { memoryBytes: input(2 ** 30, 'vm', null), dirtyRateBytesPerSec: input(200 * 2 ** 20, 'calc-dirty-rate', 42_000), workingSetBytes: input(2 ** 29, 'calc-dirty-rate', 42_000), bandwidthBytesPerSec: input(100 * 2 ** 20, 'migrations', 60_000) },
    } as unknown as MigrationPrediction;
    const m = { id: 'm1', vmId: 'v1', sourceHostId: 'a', targetHostId: 'b', state: 'created', queuePosition: null, placement: null, prediction: null, predictionError: 'no prediction: no responder' } as unknown as MigrationView;
    expect(migrationStartView(m)).toBe('migration m1: VM v1 from a to b (created)\n  prediction: none (no prediction: no responder)');
    const text = migrationStartView({ ...m, prediction, predictionError: null });
    expect(text).toContain('prediction: does not converge, total 2m30s, downtime 0 ms, 90 passes, 8.0 GiB to send');
    expect(text).toContain('(completion timeout)');
    expect(text).toContain('lever post-copy {"postCopy":true}: converges by post-copy, total 9.00 s, downtime 2 ms');
    expect(text).toContain('cost: the VM is lost if the link fails');
    expect(text).toContain('dirty 200 MiB/s (calc-dirty-rate, 42.0 s old)');
    expect(text).toContain('link 100 MiB/s (migrations, 1m00s old)');
  });

  it('given an ended migration, then the figures, or where and why it failed', () => {
    const steps = [{ number: 1, name: 'reserve-capacity', status: 'completed', durationMs: 12 }];
    const ok = { id: 'm1', state: 'completed', result: { totalTimeMs: 5200, downtimeMs: 140, bytesTransferred: 2 ** 30, passes: 4 }, failure: null, attention: null, steps } as unknown as MigrationView;
    expect(migrationEndView(ok)).toBe('migration m1: completed\n  total time:  5.20 s\n  downtime:    140 ms\n  transferred: 1.0 GiB\n  passes:      4\n  steps: 1 reserve-capacity 12 ms');
    const bad = { ...ok, state: 'rolled-back', result: null, failure: { step: 4, stepName: 'transfer-memory', code: 'AGENT_FAILED', message: 'target died' } } as MigrationView;
    expect(migrationEndView(bad)).toContain('failed at step 4 transfer-memory: AGENT_FAILED: target died');
  });

  it('given an evacuation, then its counts and per VM the outcome, migration, target, progress and reason', () => {
    const e = {
      id: 'e1', hostId: 'host-a', state: 'running', counts: { total: 2, moving: 1, moved: 0, failed: 0, notMoved: 1 },
      vms: [
        { vmId: 'v1', name: 'web', migrationId: 'm1', migrationState: 'running', targetHostId: 'host-b', outcome: 'moving', reason: null, code: null },
        { vmId: 'v2', name: 'db', migrationId: null, migrationState: null, targetHostId: null, outcome: 'not-moved', reason: 'no host has room', code: 'INSUFFICIENT_CAPACITY' },
      ],
    } as unknown as EvacuationView;
    const lines = evacuationView(e, (id) => (id === 'm1' ? 50 : undefined)).split('\n');
    expect(lines[0]).toBe('evacuation e1 of host-a: running (0 moved, 1 moving, 0 failed, 1 not moved, of 2)');
    expect(lines[2]).toMatch(/^web\s+moving\s+running\s+host-b\s+\[##########\.{10}\]  50\.0%\s+-$/);
    expect(lines[3]).toMatch(/^db\s+not-moved\s+-\s+-\s+-\s+no host has room$/);
  });

  it('given live events, then one line each: time, type, subject and the gist of the data', () => {
    expect(eventLine({ id: '5', event: 'host.down', data: { time: 'T', subject: 'host-a', data: { hostId: 'host-a', lastSeen: 'S', nested: { x: 1 } } } })).toBe('T  host.down  host-a  lastSeen=S');
    expect(eventLine({ event: 'migration.progress', data: { at: 'T', migrationId: 'm1', percent: 12.34 } })).toBe('T  migration.progress  m1  12.3%');
  });

  const twoHostPlan = {
    clusterId: 'c1',
    mode: 'Westmere',
    reason: 'the highest mode every host passes',
    holdingDown: ['host-b'],
    withoutHost: [{ hostId: 'host-a', mode: 'Westmere' }, { hostId: 'host-b', mode: 'IvyBridge' }],
    hostModes: [{ hostId: 'host-a', mode: 'IvyBridge' }, { hostId: 'host-b', mode: 'Westmere' }],
  };

  it('given a plan, then the mode and why, who holds it down, and its hosts by own highest mode and the mode without them, with their states', () => {
    const states = [
      { hostId: 'host-a', vendor: 'Intel', modelName: 'Xeon E5-2680 v2', maxImcMode: 'IvyBridge', state: 'up' },
      { hostId: 'host-b', vendor: 'Intel', modelName: 'Xeon X5670', maxImcMode: 'Westmere', state: 'down' },
    ];
    expect(planView(twoHostPlan, { hosts: states }).split('\n')).toEqual([
      'mode all hosts pass: Westmere',
      'why:                 the highest mode every host passes',
      'holding it down:     host-b',
      '',
      'OWN HIGHEST MODE  CLUSTER MODE WITHOUT ANY ONE OF THEM  HOSTS  STATES  WHICH',
      'IvyBridge         Westmere                              1      1 up    host-a',
      'Westmere          IvyBridge                             1      1 down  host-b',
    ]);
    // without the cluster's IMC view (its states), no column of states
    expect(planView(twoHostPlan).split('\n').slice(4)).toEqual([
      'OWN HIGHEST MODE  CLUSTER MODE WITHOUT ANY ONE OF THEM  HOSTS  WHICH',
      'IvyBridge         Westmere                              1      host-a',
      'Westmere          IvyBridge                             1      host-b',
    ]);
  });

  it('given a plan and --hosts, then a row per host: its own highest mode and the mode without it', () => {
    const text = planView(twoHostPlan, { perHost: true });
    expect(text.split('\n')).toEqual([
      'mode all hosts pass: Westmere',
      'why:                 the highest mode every host passes',
      'holding it down:     host-b',
      '',
      'HOST    OWN HIGHEST MODE  CLUSTER MODE WITHOUT IT',
      'host-a  IvyBridge         Westmere',
      'host-b  Westmere          IvyBridge',
    ]);
    for (const perHost of [true, false]) {
      expect(planView({ clusterId: 'c1', mode: null, reason: 'no hosts', holdingDown: [], withoutHost: [], hostModes: [] }, { perHost })).toBe('mode all hosts pass: (none)\nwhy:                 no hosts\nholding it down:     -\n\nno hosts');
    }
  });

  it("given a cluster's CPU mode and --hosts, then the mode, who holds it down (the first ten), and per host its highest mode and CPU", () => {
    const hosts = Array.from({ length: 12 }, (_, i) => ({ hostId: `h${String(i).padStart(2, '0')}`, vendor: 'Intel', modelName: 'Intel(R) Xeon(R) CPU X5670 @ 2.93GHz', maxImcMode: 'Westmere', state: 'up' }));
    const text = imcView({ clusterId: 'c1', mode: null, passthrough: false, effectiveMode: 'Westmere', commonMode: 'Westmere', holdingDown: hosts.map((h) => h.hostId), hosts }, { perHost: true });
    const lines = text.split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'mode (as set):       (unset)',
      'effective:           Westmere',
      'common to all hosts: Westmere',
      `holding it down:     ${hosts.slice(0, 10).map((h) => h.hostId).join(', ')} and 2 more`,
    ]);
    // the vendor is not said twice when the model name starts with it
    expect(lines[6]).toMatch(/^h00\s+Westmere\s+Intel\(R\) Xeon\(R\) CPU X5670 @ 2\.93GHz\s+up$/);
    expect(lines.slice(6)).toHaveLength(12);
  });

  it('given a plan that 400 hosts hold down, then its head names the first ten and counts the rest; --hosts names each', () => {
    const ids = Array.from({ length: 400 }, (_, i) => `w${String(i).padStart(3, '0')}`);
    const plan = { clusterId: 'c1', mode: 'Westmere', reason: 'r', holdingDown: ids, withoutHost: [], hostModes: ids.map((hostId) => ({ hostId, mode: 'Westmere' })) };
    const lines = planView(plan, { perHost: true }).split('\n');
    expect(lines[2]).toBe(`holding it down:     ${ids.slice(0, 10).join(', ')} and 390 more`);
    expect(lines.filter((l) => /^w\d{3}\s/.test(l))).toHaveLength(400);
    // in groups: one row for the 400, naming the first five
    expect(planView(plan).split('\n').slice(5)).toEqual([`Westmere          -                                     400    ${ids.slice(0, 5).join(', ')} and 395 more`]);
  });

  it("given a cluster of 1,000 hosts of three CPUs, then its CPU view, a verification and its plan are three rows each, every host counted", () => {
    const cpus = [
      { vendor: 'GenuineIntel', modelName: 'Xeon E5-2680 v2', maxImcMode: 'IvyBridge' },
      { vendor: 'GenuineIntel', modelName: 'Xeon X5670', maxImcMode: 'Westmere' },
      { vendor: 'AuthenticAMD', modelName: 'EPYC 7763', maxImcMode: 'EPYC-Milan' },
    ];
    const hosts = Array.from({ length: 1000 }, (_, i) => ({ hostId: `h${String(i).padStart(4, '0')}`, ...cpus[i % 3]!, state: i === 4 ? 'down' : 'up' }));
    const imc = imcView({ clusterId: 'c1', mode: null, passthrough: false, effectiveMode: 'Westmere', commonMode: null, holdingDown: [], hosts }).split('\n');
    expect(imc.slice(5)).toEqual([
      'CPU                           HIGHEST MODE  HOSTS  STATES          WHICH',
      'GenuineIntel Xeon E5-2680 v2  IvyBridge     334    334 up          h0000, h0003, h0006, h0009, h0012 and 329 more',
      'GenuineIntel Xeon X5670       Westmere      333    332 up, 1 down  h0001, h0004, h0007, h0010, h0013 and 328 more',
      'AuthenticAMD EPYC 7763        EPYC-Milan    333    333 up          h0002, h0005, h0008, h0011, h0014 and 328 more',
    ]);
    const verification = {
      mode: 'Westmere',
      pass: false,
      hosts: hosts.map((h, i) => ({ hostId: h.hostId, pass: i % 3 !== 2, missing: [], vendorMismatch: i % 3 === 2, reason: i % 3 === 2 ? 'another vendor' : '' })),
    };
    expect(verificationView(verification).split('\n')).toEqual([
      'mode Westmere: not every host passes',
      '',
      'PASS  WHY NOT         HOSTS  WHICH',
      'yes   -               667    h0000, h0001, h0003, h0004, h0006 and 662 more',
      'no    another vendor  333    h0002, h0005, h0008, h0011, h0014 and 328 more',
    ]);
    expect(verificationView(verification, { perHost: true }).split('\n')).toHaveLength(3 + 1000);
    const plan = { clusterId: 'c1', mode: null, reason: 'r', holdingDown: [], withoutHost: [], hostModes: hosts.map((h) => ({ hostId: h.hostId, mode: h.maxImcMode })) };
    expect(planView(plan, { hosts }).split('\n').slice(5).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([
      ['IvyBridge', '-', '334', '334 up'],
      ['Westmere', '-', '333', '332 up, 1 down'],
      ['EPYC-Milan', '-', '333', '333 up'],
    ]);
  });

  it('given a reconciliation report, then the last pass, the hosts it could not judge, and each finding with both sides', () => {
    const vm = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
    const finding = (over: Partial<ReconciliationFinding>): ReconciliationFinding => ({
      kind: 'orphaned', vmId: vm(1), hostId: 'host-a', otherHostIds: [], agentState: 'running', recordedHostId: null, recordedState: null,
      pausedHostIds: [], detail: 'host-a runs a VM inventory has no record of', firstSeenAt: '2026-12-03T09:00:00.000Z', lastSeenAt: '2026-12-03T09:00:10.000Z', ...over,
    });
    const report: ReconciliationReport = {
      lastPassAt: '2026-12-03T09:00:10.000Z', intervalMs: 10_000, hostsChecked: 18,
      hostsUnknownCount: 12,
      hostsUnknown: Array.from({ length: 12 }, (_, i) => `down-${i + 1}`),
      items: [
        finding({}),
        finding({ kind: 'split-brain', vmId: vm(2), otherHostIds: ['host-c'], recordedHostId: 'host-b', recordedState: 'running', hostId: 'host-b', pausedHostIds: ['host-c'], detail: 'two copies run' }),
      ],
      nextCursor: null,
    };
    const lines = reconciliationView(report).split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'last pass:        2026-12-03T09:00:10.000Z (every 10.0 s)',
      'hosts checked:    18',
      'hosts not judged: 12: down-1, down-2, down-3, down-4, down-5, down-6, down-7, down-8, down-9, down-10 and 2 more (down, or no current report of their VMs)',
    ]);
    expect(lines[4]).toMatch(/^KIND +VM +HOST +AGENT SAYS +INVENTORY SAYS +OTHER COPIES +PAUSED ON +SINCE +DETAIL$/);
    expect(lines[5]).toMatch(new RegExp(`^orphaned +${vm(1)} +host-a +running +no record +- +- +2026-12-03T09:00:00.000Z +host-a runs a VM inventory has no record of$`));
    expect(lines[6]).toMatch(new RegExp(`^split-brain +${vm(2)} +host-b +running +running on host-b +host-c +host-c +`));

    // a report names at most 100 of them: the count says how many there are
    const many = reconciliationView({ ...report, hostsUnknownCount: 1_500, hostsUnknown: Array.from({ length: 100 }, (_, i) => `down-${i + 1}`) }).split('\n');
    expect(many[2]).toBe('hosts not judged: 1500: down-1, down-2, down-3, down-4, down-5, down-6, down-7, down-8, down-9, down-10 and 1490 more (down, or no current report of their VMs)');
    const clean = { ...report, hostsUnknownCount: 0, hostsUnknown: [], items: [] };
    expect(reconciliationView(clean).split('\n').slice(2)).toEqual(['hosts not judged: 0', '', "no findings: the agents' reports match inventory"]);
    expect(reconciliationView(clean, 'missing').split('\n').at(-1)).toBe("no missing VMs: the agents' reports match inventory");
    expect(reconciliationView({ ...clean, lastPassAt: null })).toBe('no reconciliation pass yet (one runs every 10.0 s)');
  });

  it('given the command tree, then bash completion knows each command path, its subcommands and options, and --output values', () => {
    const tree = [
      { path: [], subcommands: ['hosts', 'cluster'], options: ['--help'] },
      { path: ['cluster'], subcommands: ['imc'], options: ['--help'] },
      { path: ['cluster', 'imc'], subcommands: ['show', 'auto'], options: ['--help'] },
    ];
    const script = bashCompletion('flexmig', tree, ['--output', '-o']);
    expect(script).toContain('"cluster imc") words="show auto --help --output -o" ;;');
    expect(script).toContain('"") words="hosts cluster --help --output -o" ;;');
    expect(script).toContain('compgen -W "table json yaml"');
    expect(script).toContain('complete -o default -F _flexmig_complete flexmig');
    expect(zshCompletion('flexmig', tree, [])).toMatch(/^#compdef flexmig\n[\s\S]*bashcompinit/);
  });
});
