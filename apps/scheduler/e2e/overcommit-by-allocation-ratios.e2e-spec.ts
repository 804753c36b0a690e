import { httpJson, testToken } from '@flexmig/testing';
import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`overcommit e2e skipped: ${unavailable}`);

/**
 * Overcommit (issue 11, item 3) through the built services: a 2-vCPU host holds 8 one-vCPU VMs under the
 * default ratio 4.0, by VM creation and by migration (placement and step 1's reservation); the 9th is
 * refused with the ratios named; an admin raises or lowers the ratios, and the host view follows.
 */
describeIf('vCPU and memory overcommit by per-cluster allocation ratios (real processes)', () => {
  const h = new Harness({
    hosts: [
      { id: 'oc-big', cpu: 'IvyBridge' },
      { id: 'oc-small', cpu: 'IvyBridge', env: { SIM_VCPUS: '2', SIM_MEMORY_MIB: '8192' } },
    ],
  });
  let clusterId: string;
  const host = async (id: string) => (await h.http('inventory', 'GET', `/api/v1/hosts/${id}`)).body;
  const vm = (name: string, hostId: string, memoryMiB = 512) => h.http('inventory', 'POST', '/api/v1/vms', { name, hostId, memoryMiB, vcpus: 1 });
  /** As an admin, or with `token` (null: none). */
  const setRatios = (body: unknown, token?: string | null) => httpJson(h.url.inventory, 'PUT', `/api/v1/clusters/${clusterId}/allocation-ratios`, body, token === undefined ? {} : { token });

  beforeAll(async () => {
    await h.start();
    clusterId = (await host('oc-small')).clusterId;
  }, 180_000);
  afterAll(() => h.stop(), 60_000);

  it("shows each host's ratios and capacity: 2 vCPUs × 4.0 = 8, memory × 1.0", async () => {
    expect(await host('oc-small')).toMatchObject({ vcpus: 2, cpuAllocationRatio: 4, capacityVcpus: 8, memoryMiB: 8192, memoryAllocationRatio: 1, capacityMemoryMiB: 8192, allocatedVcpus: 0 });
    const cluster = (await h.http('inventory', 'GET', '/api/v1/clusters')).body.items.find((c: { id: string }) => c.id === clusterId);
    expect(cluster).toMatchObject({ cpuAllocationRatio: 4, memoryAllocationRatio: 1 });
  });

  it('takes VMs past its physical vCPUs, by creation and by live migration, up to its capacity', async () => {
    for (let i = 1; i <= 7; i++) expect((await vm(`oc-${i}`, 'oc-small')).status).toBe(201);
    const mover = (await vm('oc-mover', 'oc-big')).body;
    const m = await h.migrate(mover.id, 'oc-small');
    expect((await h.waitForEnd(m.id)).state).toBe('completed');
    expect(await host('oc-small')).toMatchObject({ allocatedVcpus: 8, capacityVcpus: 8 });
  });

  it('refuses the 9th, by creation, by placement and at step 1, naming the ratios', async () => {
    const r = await vm('oc-9', 'oc-small');
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('INSUFFICIENT_CAPACITY');
    expect(r.body.message).toContain('0 vCPUs free');
    expect(r.body.message).toContain('vCPU 4');
    const other = (await vm('oc-other', 'oc-big')).body;
    // no target: placement passes the full host over, saying how its capacity came about
    const placed = await h.http('scheduler', 'POST', '/api/v1/migrations', { vmId: other.id });
    expect(JSON.stringify(placed.body)).toContain('not enough free vCPUs: 0 free of 8 (2 × 4), 1 needed');
    // the host named: step 1's reservation refuses it, and the migration rolls back with the reason
    const m = await h.migrate(other.id, 'oc-small');
    const end = await h.waitForEnd(m.id);
    expect(end.state).toBe('rolled-back');
    expect(end.failure).toMatchObject({ stepName: 'verify-compatibility', code: 'INSUFFICIENT_CAPACITY' });
    expect(end.failure.message).toContain('0 vCPUs free');
  });

  it('follows a raised ratio at once, and a lowered one keeps what runs but takes nothing new', async () => {
    expect((await setRatios({ cpuAllocationRatio: 5 })).body).toMatchObject({ id: clusterId, cpuAllocationRatio: 5, memoryAllocationRatio: 1 });
    expect(await host('oc-small')).toMatchObject({ capacityVcpus: 10 });
    expect((await vm('oc-9', 'oc-small')).status).toBe(201);

    expect((await setRatios({ cpuAllocationRatio: 1 })).status).toBe(200);
    expect(await host('oc-small')).toMatchObject({ capacityVcpus: 2, allocatedVcpus: 9 });
    const running = (await h.http('inventory', 'GET', '/api/v1/vms')).body.items.filter((v: { hostId: string; state: string }) => v.hostId === 'oc-small' && v.state === 'running');
    expect(running).toHaveLength(9);
    expect((await vm('oc-10', 'oc-small')).body.code).toBe('INSUFFICIENT_CAPACITY');
  });

  it('overcommits memory only when its ratio says so', async () => {
    expect((await setRatios({ cpuAllocationRatio: 8 })).status).toBe(200);
    // 9 × 512 MiB held of 8192: 3584 MiB free
    const big = await vm('oc-mem', 'oc-small', 4096);
    expect(big.body).toMatchObject({ code: 'INSUFFICIENT_CAPACITY' });
    expect(big.body.message).toContain('3584 MiB');
    expect((await setRatios({ memoryAllocationRatio: 1.5 })).body).toMatchObject({ cpuAllocationRatio: 8, memoryAllocationRatio: 1.5 });
    expect(await host('oc-small')).toMatchObject({ capacityMemoryMiB: 12_288 });
    expect((await vm('oc-mem', 'oc-small', 4096)).status).toBe(201);
  });

  it('validates a change, and only an admin makes one', async () => {
    for (const bad of [{}, { cpuAllocationRatio: 0 }, { cpuAllocationRatio: -1 }, { memoryAllocationRatio: 9 }, { cpuAllocationRatio: 'four' }, { cpuAllocationRatio: 2, other: 1 }]) {
      expect({ bad, status: (await setRatios(bad)).status }).toEqual({ bad, status: 400 });
    }
    expect((await httpJson(h.url.inventory, 'PUT', '/api/v1/clusters/00000000-0000-4000-8000-000000000000/allocation-ratios', { cpuAllocationRatio: 2 })).status).toBe(404);
    expect((await setRatios({ cpuAllocationRatio: 2 }, await testToken('operator'))).status).toBe(403);
    expect((await setRatios({ cpuAllocationRatio: 2 }, null)).status).toBe(401);
    expect(await host('oc-small')).toMatchObject({ cpuAllocationRatio: 8, memoryAllocationRatio: 1.5 });
  });

  it('takes ratios when a cluster is created', async () => {
    const r = await h.http('inventory', 'POST', '/api/v1/clusters', { name: 'dense', cpuAllocationRatio: 16 });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ name: 'dense', cpuAllocationRatio: 16, memoryAllocationRatio: 1 });
    expect((await h.http('inventory', 'POST', '/api/v1/clusters', { name: 'bad', memoryAllocationRatio: 0 })).status).toBe(400);
  });
});
