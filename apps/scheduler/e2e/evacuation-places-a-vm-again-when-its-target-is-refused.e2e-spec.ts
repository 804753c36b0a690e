import { Harness, waitFor } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`re-placement e2e skipped: ${unavailable}`);

/**
 * An evacuation places its VMs, then one of the chosen targets goes into maintenance before step 1 reserves
 * it (what evacuating several hosts at once does: docs/scale.md). Step 1 refuses the migration, which rolls
 * back with nothing done; the evacuation asks placement again, and the VM moves to another host. Real
 * processes; one migration at a time leaves the source (MAX_OUTBOUND_PER_HOST=1) and each step waits
 * STEP_DELAY_MS, so the later migrations are still queued, their step 1 not run, when the target is taken away.
 */
describeIf('an evacuation places a VM again when step 1 refuses its target (real processes)', () => {
  const h = new Harness({
    hosts: ['replace-src', 'replace-t1', 'replace-t2', 'replace-t3'].map((id) => ({ id, cpu: 'IvyBridge', env: { SIM_MEMORY_MIB: '65536', SIM_TIME_SCALE: '0.02' } })),
    scheduler: { MAX_OUTBOUND_PER_HOST: '1', MAX_INBOUND_PER_HOST: '0', MAX_PER_CLUSTER: '5', STEP_DELAY_MS: '300' },
  });
  const http = (service: string, method: string, p: string, body?: unknown) => h.http(service, method, p, body);

  beforeAll(() => h.start(), 180_000);
  afterAll(() => h.stop(), 60_000);

  it('moves every VM, the refused one on a migration of its own to another host', async () => {
    const vmIds: string[] = [];
    for (let i = 1; i <= 3; i++) vmIds.push((await h.createVm(`replace-vm-${i}`, 'replace-src', 1_024)).id);
    const accepted = await http('scheduler', 'POST', '/api/v1/evacuations', { hostId: 'replace-src' });
    expect(accepted.status).toBe(202);
    expect(accepted.body.counts).toMatchObject({ total: 3, notMoved: 0 });

    // the last VM's migration waits in the queue behind the first (one outbound at a time, each step 300 ms)
    const last = accepted.body.vms[2];
    const queued = (await http('scheduler', 'GET', `/api/v1/migrations/${last.migrationId}`)).body;
    expect(queued).toMatchObject({ state: 'queued', placement: { chosen: queued.targetHostId } });
    const taken = queued.targetHostId as string;
    expect((await http('inventory', 'PUT', `/api/v1/hosts/${taken}/maintenance`, { maintenance: true })).status).toBe(200);

    const evacuation = await waitFor(
      `evacuation ${accepted.body.id} to finish`,
      async () => {
        const { body } = await http('scheduler', 'GET', `/api/v1/evacuations/${accepted.body.id}`);
        return body.state && body.state !== 'running' ? body : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(evacuation.state).toBe('completed');
    expect(evacuation.counts).toEqual({ total: 3, moving: 0, moved: 3, failed: 0, notMoved: 0 });

    // the refused migration: rolled back at step 1 because its target went into maintenance
    const item = evacuation.vms.find((v: any) => v.vmId === last.vmId);
    expect(item.earlierMigrationIds).toEqual([last.migrationId]);
    expect(item.migrationId).not.toBe(last.migrationId);
    const refused = (await http('scheduler', 'GET', `/api/v1/migrations/${last.migrationId}`)).body;
    expect(refused).toMatchObject({ state: 'rolled-back', targetHostId: taken, failure: { step: 1, code: 'HOST_IN_MAINTENANCE' } });
    expect(refused.failure.message).toContain(`host ${taken} is in maintenance`);

    // its second migration: placed again, away from the host in maintenance, and completed
    const second = (await http('scheduler', 'GET', `/api/v1/migrations/${item.migrationId}`)).body;
    expect(second).toMatchObject({ state: 'completed', vmId: last.vmId, sourceHostId: 'replace-src', requestedBy: refused.requestedBy });
    expect(second.targetHostId).not.toBe(taken);
    expect(second.placement.chosen).toBe(second.targetHostId);

    // inventory agrees: each VM runs where its evacuation says, none on the source; any other VM placed again
    // (the first two may have been headed for the same host) was refused for the same reason
    for (const v of evacuation.vms) {
      const vm = (await http('inventory', 'GET', `/api/v1/vms/${v.vmId}`)).body;
      expect(vm).toMatchObject({ state: 'running', hostId: v.targetHostId });
      expect(vm.hostId).not.toBe('replace-src');
      for (const earlier of v.earlierMigrationIds) {
        const m = (await http('scheduler', 'GET', `/api/v1/migrations/${earlier}`)).body;
        expect(m).toMatchObject({ state: 'rolled-back', vmId: v.vmId, targetHostId: taken, failure: { step: 1, code: 'HOST_IN_MAINTENANCE' } });
      }
    }
    expect(new Set(evacuation.vms.map((v: any) => v.vmId))).toEqual(new Set(vmIds));
    // and an SRE sees it: each VM placed again is counted by what came of it
    const metrics = await (await fetch(`${h.url.scheduler}/metrics`)).text();
    expect(metrics).toMatch(/flexmig_evacuation_vms_placed_again_total\{outcome="migration"\} [1-9]/);
    expect((await http('inventory', 'GET', '/api/v1/vms?hostId=replace-src')).body.items).toEqual([]);
  });
});
