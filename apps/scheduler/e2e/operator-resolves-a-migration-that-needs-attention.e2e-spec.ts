import { httpJson, testToken, waitFor } from '@flexmig/testing';
import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`resolve test skipped: ${unavailable}`);

/**
 * A migration ends `failed-needs-attention` because its target agent stopped answering mid-step (frozen
 * with SIGSTOP, as in agent-that-stops-answering-ends-needing-attention). An operator closes it with
 * POST /api/v1/migrations/:id/resolve: while the target cannot be asked flexmig wants to be told where
 * the VM runs; a statement the agents contradict is refused with what they said; once both answer, they
 * decide. Then the VM runs on exactly one host, inventory agrees (and holds no reservation on the
 * target), GET shows the resolution with the operator from the token, `migration.resolved` is published
 * once, and a second resolve is refused.
 */
describeIf('an operator resolves a migration that needs attention', () => {
  const h = new Harness({
    hosts: [
      { id: 'r1', cpu: 'Cascadelake-Server' },
      { id: 'r2', cpu: 'Cascadelake-Server' },
    ],
    scheduler: { STEP_TIMEOUT_MS: '2000', OUTCOME_UNKNOWN_LIMIT_MS: '5000' },
    agent: { SIM_STEP_LATENCY_MS: '300', SIM_TIME_SCALE: '0.5' },
  });
  beforeAll(() => h.start(), 120_000);
  afterAll(() => h.stop());

  const resolve = async (id: string, body: unknown, sub = 'op-alice') =>
    httpJson(h.url.scheduler, 'POST', `/api/v1/migrations/${id}/resolve`, body, { token: await testToken('operator', sub) });

  it('asks the agents, fences the other copy, makes inventory agree, records it once', async () => {
    const vm = await h.createVm('resolve-a', 'r1', 2048);
    const m = await h.migrate(vm.id, 'r2');
    // a migration that does not need attention cannot be resolved
    const early = await resolve(m.id, {});
    expect([early.status, early.body.code]).toEqual([409, 'CONFLICT']);
    expect(early.body.message).toContain('only a migration in failed-needs-attention can be resolved');

    await h.waitForStep(m.id, 2);
    const r2 = h.procs.get('r2')!;
    process.kill(r2.pid!, 'SIGSTOP');
    let frozen = true;
    try {
      const ended = await h.waitForEnd(m.id, 60_000);
      expect(ended.state).toBe('failed-needs-attention');
      expect(ended.resolution).toBeNull();

      // the target cannot be asked: flexmig cannot tell, and says what it found and what to pass
      const blind = await resolve(m.id, { reason: 'checking' });
      expect([blind.status, blind.body.code]).toEqual([422, 'RUNS_ON_REQUIRED']);
      expect(blind.body.message).toContain('the target agent cannot be asked');
      expect(blind.body.message).toContain('source r1: the VM is running');
      expect(blind.body.message).toContain('pass runsOn=source or runsOn=target');
    } finally {
      process.kill(r2.pid!, 'SIGCONT');
      frozen = false;
    }
    expect(frozen).toBe(false);

    // a statement the agents contradict is refused, with their evidence, and changes nothing
    const wrong = await waitFor('the target agent to answer again', async () => {
      const r = await resolve(m.id, { runsOn: 'target', reason: 'I think it moved' });
      return r.body?.code === 'RUNS_ON_CONTRADICTED' ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(wrong.status).toBe(409);
    expect(wrong.body.message).toContain('runsOn=target contradicts the agents');
    expect(wrong.body.message).toContain('source r1: the VM is running');
    expect(wrong.body.details.agents).toEqual([
      expect.objectContaining({ hostId: 'r1', role: 'source', answered: true, copy: 'running' }),
      expect.objectContaining({ hostId: 'r2', role: 'target', answered: true }),
    ]);
    expect((await h.migration(m.id)).resolution).toBeNull();

    // both answer, only the source runs it: the agents decide
    // (the step-2 command the frozen agent got may still be running there: the agent refuses a fence until
    // it ends, retryable, and the operator resolves again)
    const ok = await waitFor('the resolution', async () => {
      const r = await resolve(m.id, { reason: 'target agent hung during transfer-config' });
      return r.body?.code === 'AGENT_FAILED' && String(r.body.message).includes('is running on') ? undefined : r;
    }, { timeoutMs: 15_000, intervalMs: 300 });
    expect([ok.status, ok.body.code]).toEqual([200, undefined]);
    expect(ok.body).toMatchObject({
      runsOn: 'source',
      hostId: 'r1',
      decidedBy: 'agents',
      by: 'op-alice',
      reason: 'target agent hung during transfer-config',
      fence: { hostId: 'r2', delivered: true },
      kept: { hostId: 'r1', action: 'none' },
    });
    expect(['destroyed', 'none']).toContain(ok.body.fence.action); // the incoming copy, if step 2 got there after SIGCONT

    // the VM runs on exactly one host, and inventory agrees; the target holds no reservation any more
    expect(await h.whereIs(vm.id)).toEqual([{ hostId: 'r1', state: 'running' }]);
    expect((await h.http('inventory', 'GET', `/api/v1/vms/${vm.id}`)).body.hostId).toBe('r1');
    expect((await h.http('inventory', 'GET', '/api/v1/hosts/r2')).body.allocatedMemoryMiB).toBe(0);

    // recorded on the migration, which keeps its state
    const after = await h.migration(m.id);
    expect(after.state).toBe('failed-needs-attention');
    expect(after.resolution).toEqual(ok.body);

    // published once, through the outbox
    const published = await waitFor('migration.resolved', async () => {
      const mine = (await h.events('migration.resolved')).filter((e) => e.subject === m.id);
      return mine.length ? mine : undefined;
    }, { timeoutMs: 15_000 });
    expect(published).toHaveLength(1);
    expect(published[0].data).toMatchObject({ migrationId: m.id, vmId: vm.id, runsOn: 'source', hostId: 'r1', by: 'op-alice', decidedBy: 'agents' });

    // a second resolve is refused and publishes nothing
    const again = await resolve(m.id, {}, 'op-bob');
    expect([again.status, again.body.code]).toEqual([409, 'CONFLICT']);
    expect(again.body.message).toContain('already resolved by op-alice');
    await new Promise((r) => setTimeout(r, 1_000)); // a relay tick or four
    expect((await h.events('migration.resolved')).filter((e) => e.subject === m.id)).toHaveLength(1);

    // the VM is whole and free to move again: a new migration to the same target completes
    await waitFor('r2 up again', async () => (await h.http('inventory', 'GET', '/api/v1/hosts/r2')).body.state === 'up', { timeoutMs: 15_000 });
    const next = await h.migrate(vm.id, 'r2');
    await h.expectCleanEnd(next.id, vm.id);
  });
});
