import { waitFor } from '@flexmig/testing';
import { Harness, TERMINAL } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`agent-gone test skipped: ${unavailable}`);

/**
 * A target agent stops answering in the middle of a migration (frozen with SIGSTOP, as a hung host or a
 * partition looks: its NATS subscription stays, its replies never come). The scheduler asks it what it did,
 * gets no answer, and keeps asking only for OUTCOME_UNKNOWN_LIMIT_MS: then the migration ends
 * `failed-needs-attention` (outcome unknown, said so in the API and the event) instead of holding its
 * admission slot forever, and the migration queued behind it runs and completes.
 * (An agent that is simply gone gets "no responders" at once, which fails the step and rolls back.)
 */
describeIf('an agent that stops answering in the middle of a step', () => {
  const limitMs = 6_000;
  const h = new Harness({
    hosts: [
      { id: 'g1', cpu: 'Cascadelake-Server' },
      { id: 'g2', cpu: 'Cascadelake-Server' },
      { id: 'g3', cpu: 'Cascadelake-Server' },
    ],
    scheduler: { STEP_TIMEOUT_MS: '2000', OUTCOME_UNKNOWN_LIMIT_MS: String(limitMs), MAX_PER_CLUSTER: '1' },
    agent: { SIM_STEP_LATENCY_MS: '300', SIM_TIME_SCALE: '0.5' },
  });
  beforeAll(() => h.start(), 120_000);
  afterAll(() => h.stop());

  it('ends failed-needs-attention past the limit, says why, and frees its slot', async () => {
    const a = await h.createVm('gone-a', 'g1', 4096);
    const b = await h.createVm('gone-b', 'g1', 1024);
    const first = await h.migrate(a.id, 'g2');
    // frozen while the target still has a part to play after the step (steps 2-6; step 5 is the source's,
    // step 6 then needs the target): a poll every 10 ms can miss one short step on a loaded machine
    await h.waitForStep(first.id, 2, 6);
    const g2 = h.procs.get('g2')!;
    process.kill(g2.pid!, 'SIGSTOP');
    const killedAt = Date.now();
    const second = await h.migrate(b.id, 'g3');
    expect(second.state).toBe('queued'); // the cluster allows one at a time

    const m = await h.waitForEnd(first.id, 60_000).finally(() => process.kill(g2.pid!, 'SIGCONT'));
    expect(m.state).toBe('failed-needs-attention');
    expect(m.attention).toMatchObject({ kind: 'outcome-unknown', stepName: expect.any(String), message: expect.stringContaining('could not be asked') });
    // the step timeout, then queries (5 s request timeout each, with backoff) until the limit: not forever
    expect(Date.now() - killedAt).toBeLessThan(2_000 + limitMs + 20_000);

    const failed = await waitFor('the failed event', async () => (await h.events('migration.failed')).find((e) => e.subject === first.id), { timeoutMs: 10_000 });
    expect(failed.data).toMatchObject({ needsAttention: true });

    const next = await h.waitForEnd(second.id, 60_000);
    expect(TERMINAL).toContain(next.state);
    expect(next.state).toBe('completed');
    expect((await h.http('inventory', 'GET', `/api/v1/vms/${b.id}`)).body.hostId).toBe('g3');
  });
});
