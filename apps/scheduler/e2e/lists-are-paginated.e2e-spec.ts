import { Harness } from '@flexmig/testing';

const unavailable = Harness.available();
const describeIf = unavailable ? describe.skip : describe;
if (unavailable) console.warn(`pagination e2e skipped: ${unavailable}`);

/**
 * Every list of the HTTP APIs pages the same way (issue 11, item 2): `limit` (100 by default, 1,000 at most),
 * an opaque `cursor`, `nextCursor` null on the last page, a stable order, and the filters kept across pages.
 */
describeIf('lists, a page at a time (real processes)', () => {
  const h = new Harness({ hosts: [{ id: 'pg-a', cpu: 'IvyBridge' }, { id: 'pg-b', cpu: 'IvyBridge' }] });
  const created: { id: string; hostId: string }[] = [];

  /** Every page of a list, following nextCursor; the pages as they came. */
  async function pages(service: string, path: string): Promise<{ ids: string[]; count: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let count = 0;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const r = await h.http(service, 'GET', `${path}${cursor ? `${sep}cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      ids.push(...r.body.items.map((x: { id: string }) => x.id));
      cursor = r.body.nextCursor;
      count++;
    } while (cursor);
    return { ids, count };
  }

  beforeAll(async () => {
    await h.start();
    for (let i = 0; i < 7; i++) created.push(await h.createVm(`page-${i}`, i % 2 ? 'pg-b' : 'pg-a', 256));
  }, 180_000);
  afterAll(() => h.stop(), 60_000);

  it('pages VMs oldest first, each exactly once, with nextCursor null on the last page', async () => {
    const first = await h.http('inventory', 'GET', '/api/v1/vms?limit=3');
    expect(first.body.items).toHaveLength(3);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    const all = await pages('inventory', '/api/v1/vms?limit=3');
    expect(all).toEqual({ ids: created.map((v) => v.id), count: 3 });
    // the default page holds them all, and says there is no more
    expect((await h.http('inventory', 'GET', '/api/v1/vms')).body).toMatchObject({ items: expect.any(Array), nextCursor: null });
  });

  it('keeps the filters across pages', async () => {
    const onB = await pages('inventory', '/api/v1/vms?hostId=pg-b&limit=2');
    expect(onB).toEqual({ ids: created.filter((v) => v.hostId === 'pg-b').map((v) => v.id), count: 2 });
  });

  it('pages hosts by id and clusters oldest first', async () => {
    expect((await pages('inventory', '/api/v1/hosts?limit=1')).ids).toEqual(['pg-a', 'pg-b']);
    const clusters = await pages('inventory', '/api/v1/clusters?limit=1');
    expect(clusters.ids).toHaveLength(1);
  });

  it('pages migrations newest first, and a migration started meanwhile does not shift the pages', async () => {
    const done = [];
    for (const vm of created.slice(0, 3)) {
      const m = await h.migrate(vm.id, vm.hostId === 'pg-a' ? 'pg-b' : 'pg-a');
      done.push(m.id);
      await h.waitForEnd(m.id);
    }
    const first = await h.http('scheduler', 'GET', '/api/v1/migrations?limit=2');
    expect(first.body.items.map((m: { id: string }) => m.id)).toEqual([done[2], done[1]]);
    // one more, newer than every page: the next page still starts after the cursor's migration
    const later = await h.migrate(created[3].id, created[3].hostId === 'pg-a' ? 'pg-b' : 'pg-a');
    await h.waitForEnd(later.id);
    const second = await h.http('scheduler', 'GET', `/api/v1/migrations?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body).toEqual({ items: [expect.objectContaining({ id: done[0] })], nextCursor: null });
  });

  it('pages the NATS lists too (inventory.vm.list, inventory.host.list), as the services collect them', async () => {
    const ask = async (subject: string, body: object) => JSON.parse(new TextDecoder().decode((await h.nc.request(`${h.prefix}.${subject}`, new TextEncoder().encode(JSON.stringify(body)), { timeout: 5000 })).data));
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const reply = await ask('inventory.vm.list', { limit: 3, ...(cursor ? { cursor } : {}) });
      expect(reply.ok).toBe(true);
      ids.push(...reply.data.vms.map((v: { id: string }) => v.id));
      cursor = reply.data.nextCursor;
    } while (cursor);
    expect(ids).toEqual(created.map((v) => v.id));
    const hosts = await ask('inventory.host.list', { limit: 1 });
    expect(hosts.data.hosts.map((x: { id: string }) => x.id)).toEqual(['pg-a']);
    expect((await ask('inventory.host.list', { limit: 1, cursor: hosts.data.nextCursor })).data).toMatchObject({ hosts: [{ id: 'pg-b' }], nextCursor: null });
    expect((await ask('inventory.vm.list', { limit: 5000 })).error.code).toBe('VALIDATION_FAILED');
  });

  it('refuses a limit outside 1–1000 and a cursor it did not give, with 400', async () => {
    for (const q of ['limit=0', 'limit=1001', 'limit=ten', 'cursor=bm90LWEtY3Vyc29y', 'cursor=%2F%2F', `cursor=${Buffer.from('v1:00000000-0000-4000-8000-000000000000').toString('base64url')}`]) {
      const r = await h.http('inventory', 'GET', `/api/v1/vms?${q}`);
      expect({ q, status: r.status, code: r.body.code }).toEqual({ q, status: 400, code: 'VALIDATION_FAILED' });
    }
    expect((await h.http('scheduler', 'GET', '/api/v1/migrations?limit=1001')).status).toBe(400);
    expect((await h.http('scheduler', 'GET', '/api/v1/evacuations?limit=1')).body).toEqual({ items: [], nextCursor: null });
  });

  it("pages the VMs of one name (names are not unique), with the host filter too; an empty name is refused", async () => {
    const twins = [];
    for (const host of ['pg-a', 'pg-b', 'pg-b']) twins.push(await h.createVm('twin', host, 256));
    expect(await pages('inventory', '/api/v1/vms?name=twin&limit=2')).toEqual({ ids: twins.map((v) => v.id), count: 2 });
    expect((await pages('inventory', '/api/v1/vms?name=twin&hostId=pg-b')).ids).toEqual(twins.slice(1).map((v) => v.id));
    expect((await pages('inventory', '/api/v1/vms?name=page-3')).ids).toEqual([created[3]!.id]);
    expect((await pages('inventory', '/api/v1/vms?name=nobody')).ids).toEqual([]);
    expect((await h.http('inventory', 'GET', '/api/v1/vms?name=')).status).toBe(400);
  });
});
