import { Harness } from '@flexmig/testing';
import { sleep } from '@flexmig/timing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`scheduler crash tests skipped: ${unavailable}`);

/**
 * kill -9 of the scheduler during each of the nine steps, then a restart: every migration still ends
 * cleanly (here: completed, since nothing else failed), with the VM on exactly one host.
 * STEP_DELAY_MS and SIM_STEP_LATENCY_MS stretch every step so the kill lands inside it, sometimes before
 * its command was sent and sometimes while the agent works on it.
 */
describeIf('the scheduler killed with kill -9 in each step, then restarted', () => {
  const h = new Harness({
    hosts: [
      { id: 'h1', cpu: 'Skylake-Server' },
      { id: 'h2', cpu: 'Skylake-Server' },
    ],
    scheduler: { STEP_DELAY_MS: '300', STEP_TIMEOUT_MS: '4000' },
    agent: { SIM_STEP_LATENCY_MS: '300', SIM_TIME_SCALE: '0.2' },
  });
  beforeAll(() => h.start(), 120_000);
  afterAll(() => h.stop());

  let on = 'h1';
  for (const step of [1, 2, 3, 4, 5, 6, 7, 8, 9]) {
    it(`during step ${step}`, async () => {
      const target = on === 'h1' ? 'h2' : 'h1';
      const vm = await h.createVm(`crash-${step}`, on, 1024);
      const m = await h.migrate(vm.id, target);
      await h.waitForStep(m.id, step);
      await sleep(Math.floor(Math.random() * 250));
      await h.crashAndRestart('scheduler');
      const end = await h.expectCleanEnd(m.id, vm.id);
      expect(end.state).toBe('completed');
      on = target;
      // the VM of this test stays where it is; the next test uses a fresh one on the other host
    });
  }

  it('killed for good: another replica takes its migrations over when the lease lapses', async () => {
    const second = await h.startService('scheduler-2', 'scheduler', { ...h.procs.get('scheduler')!.env, SCHEDULER_ID: 'sched-2', LOG_LEVEL: 'log' });
    const target = on === 'h1' ? 'h2' : 'h1';
    const vm = await h.createVm('takeover', on, 1024);
    const m = await h.migrate(vm.id, target); // through replica 1, which therefore drives it
    await h.waitForStep(m.id, 4);
    await h.procs.get('scheduler')!.kill();
    h.url.scheduler = h.url['scheduler-2'];
    const end = await h.expectCleanEnd(m.id, vm.id);
    expect(end.state).toBe('completed');
    expect(second.output.join('\n')).toContain(`migration ${m.id}: claimed by sched-2`);
  });
});
