import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`limits test skipped: ${unavailable}`);

/**
 * 100 migrations requested at once under limits of 2 outbound per host and 5 per cluster: all complete,
 * and the step times the scheduler recorded show the limits never exceeded (a migration holds its slots
 * from the start of step 1 to the end of step 9).
 */
describeIf('100 migrations requested at once, within the limits', () => {
  const hosts = Array.from({ length: 10 }, (_, i) => ({ id: `l${i}`, cpu: 'Icelake' }));
  const h = new Harness({
    hosts,
    scheduler: { MAX_OUTBOUND_PER_HOST: '2', MAX_INBOUND_PER_HOST: '0', MAX_PER_CLUSTER: '5' },
    agent: { SIM_TIME_SCALE: '0.01', SIM_STEP_LATENCY_MS: '5' },
  });
  beforeAll(() => h.start(), 180_000);
  afterAll(() => h.stop());

  it('all complete, and no limit is ever exceeded', async () => {
    const vms = [];
    for (let i = 0; i < 100; i++) vms.push(await h.createVm(`many-${i}`, hosts[i % 10].id, 512));
    const requested = await Promise.all(vms.map((vm, i) => h.migrate(vm.id, hosts[(i + 1 + (i % 3)) % 10].id)));
    expect(requested.filter((m) => m.state === 'queued').length).toBeGreaterThan(0); // most wait their turn
    const done = [];
    for (const m of requested) done.push(await h.waitForEnd(m.id, 180_000));
    expect(done.map((m) => m.state)).toEqual(Array(100).fill('completed'));
    for (const vm of vms) expect((await h.http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe(done[vms.indexOf(vm)].targetHostId);

    // the most migrations in flight at any instant, overall and per source host
    const spans = done.map((m) => ({ src: m.sourceHostId, from: Date.parse(m.steps[0].startedAt), to: Date.parse(m.steps[8].endedAt) }));
    const peak = (sel: typeof spans) => {
      const edges = sel.flatMap((s) => [{ t: s.from, d: 1 }, { t: s.to, d: -1 }]).sort((a, b) => a.t - b.t || a.d - b.d);
      let cur = 0;
      let max = 0;
      for (const e of edges) max = Math.max(max, (cur += e.d));
      return max;
    };
    expect(peak(spans)).toBeLessThanOrEqual(5);
    for (const host of hosts) expect(peak(spans.filter((s) => s.src === host.id))).toBeLessThanOrEqual(2);
    expect(peak(spans)).toBe(5); // and the limit was actually used, not just respected by accident
  });
});
