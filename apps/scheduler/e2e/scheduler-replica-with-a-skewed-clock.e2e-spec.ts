import { existsSync } from 'node:fs';
import { Client } from 'pg';
import { sleep } from '@flexmig/timing';
import { Harness } from '@flexmig/testing';
import { STEP_NAMES } from '@flexmig/contracts';
import { CommandLog } from './faults/runner';

// libfaketime (Debian's faketime package) shifts a process's wall clock; the monotonic clock stays true.
const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const unavailable = Harness.available() ?? (existsSync(libfaketime) ? undefined : `${libfaketime} is missing (apt-get install faketime)`);
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`skewed-clock test skipped: ${unavailable}`);

/**
 * Two scheduler replicas, one of them with its clock three hours behind, drive migrations in turn and
 * take them over from each other. Step durations and total times stay true (never negative), leases
 * hold, every outcome event is published, and nothing lands in the dead-letter table.
 */
describeIf('a scheduler replica whose clock is three hours behind', () => {
  // every step stretched to ~300 ms, so that a replica can be killed inside a chosen one
  const h = new Harness({
    hosts: [
      { id: 'c1', cpu: 'Skylake-Client' },
      { id: 'c2', cpu: 'Skylake-Client' },
    ],
    scheduler: { STEP_DELAY_MS: '150', STEP_TIMEOUT_MS: '4000' },
    agent: { SIM_STEP_LATENCY_MS: '150', SIM_TIME_SCALE: '0.2' },
  });
  const skewed = { LD_PRELOAD: libfaketime, FAKETIME: '-3h', FAKETIME_DONT_FAKE_MONOTONIC: '1' };

  beforeAll(async () => {
    await h.start();
    await h.startService('scheduler-skewed', 'scheduler', { ...h.procs.get('scheduler')!.env, SCHEDULER_ID: 'sched-skewed', LOG_LEVEL: 'log', ...skewed });
  }, 180_000);
  afterAll(() => h.stop());

  it('runs with a clock three hours behind, and says it uses PostgreSQL’s', async () => {
    const out = () => h.procs.get('scheduler-skewed')!.output.join('\n');
    await sleep(500);
    const behindMs = Number(/this machine's clock is behind PostgreSQL's by (\d+) ms/.exec(out())?.[1]);
    expect(Math.abs(behindMs - 3 * 3600_000)).toBeLessThan(60_000);
  });

  it('hands migrations back and forth between the replicas, and every figure and event stays true', async () => {
    // a step is reached when its command is on the wire (pushed, so that a slow poll cannot miss a short step)
    const commands = new CommandLog();
    commands.start(h);
    await h.nc.flush();
    const normalUrl = h.url.scheduler;
    let on = 'c1';
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const target = on === 'c1' ? 'c2' : 'c1';
      const vm = await h.createVm(`skew-${i}`, on, 2048);
      // requested of one replica or the other, which then drives it; the other takes over when that one dies
      h.url.scheduler = h.url[i % 2 === 0 ? 'scheduler-skewed' : 'scheduler'];
      const m = await h.migrate(vm.id, target);
      await commands.reached(m.id, STEP_NAMES[2 + (i % 3)]); // step 3, 4 or 5: transfer-memory, sync-memory, pause-source
      if (i === 2) await h.crashAndRestart('scheduler'); // its migrations move to the skewed replica
      if (i === 3) await h.crashAndRestart('scheduler-skewed'); // and the other way round
      h.url.scheduler = normalUrl;
      const end = await h.expectCleanEnd(m.id, vm.id);
      expect(end.state).toBe('completed');
      ids.push(m.id);
      on = target;
    }
    for (const id of ids) {
      const m = await h.migration(id);
      expect(m.result.totalTimeMs).toBeGreaterThanOrEqual(0);
      expect(m.result.totalTimeMs).toBeLessThan(5 * 60_000); // not three hours either way
      // stamped on PostgreSQL's clock (this test's own), whichever replica wrote them
      for (const at of [m.createdAt, m.finishedAt, ...m.steps.map((st: { startedAt: string }) => st.startedAt)]) {
        expect(Math.abs(Date.parse(at) - Date.now())).toBeLessThan(5 * 60_000);
      }
      for (const st of m.steps) {
        expect(st.durationMs).toBeGreaterThanOrEqual(0);
        expect(st.durationMs).toBeLessThan(5 * 60_000);
      }
    }
    const completed = (await h.events('migration.completed')).filter((e) => ids.includes(e.subject));
    expect(completed).toHaveLength(ids.length);
    for (const e of completed) expect(e.data.totalTimeMs).toBeLessThan(5 * 60_000);
    const steps = (await h.events('migration.step-completed')).filter((e) => ids.includes(e.subject));
    expect(steps.length).toBeGreaterThanOrEqual(9 * ids.length);
    commands.stop();
    const db = new Client({ connectionString: h.pg.url('flexmig') });
    await db.connect();
    try {
      expect((await db.query('SELECT count(*)::int AS n FROM scheduler.outbox_dead_letter')).rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
  });
});
