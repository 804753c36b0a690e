/**
 * What keeps inventory's requests at the same cost for 1,000 hosts as for 20 (issue 11, docs/scale.md), against
 * real PostgreSQL with inventory's own migrations: the cluster's CPU plan is asked of cpu-compat once and kept
 * until a host joins or changes its CPU, and heartbeats that change nothing, or bring a new VM set with its
 * list, are written together.
 * cpu-compat's logic (the catalog functions of @flexmig/cpu-models that it serves) runs in-process; the
 * events that would go to NATS are collected.
 */
import { Client } from 'pg';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { HostPageSchema, HostUp, type HostCpu, type HostRegistration, PlacementHostSchema, vmDigest, withFeatures } from '@flexmig/contracts';
import { evaluateHost, planCluster, simulatedHostCpu } from '@flexmig/cpu-models';
import { ensureDatabaseAndSchema, initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { startTestDatabase, TestDatabase, waitFor } from '@flexmig/testing';
import { inventoryEntities } from './entities';
import { inventoryMigrations } from './migrations';
import { ClustersService } from './clusters/clusters.service';
import { ClusterCpuPlans } from './clusters/cluster-cpu-plans';
import { PlacementHosts } from './hosts/placement-hosts';
import { HostsService } from './hosts/hosts.service';
import { HeartbeatBatch } from './hosts/heartbeat-batch';
import type { CpuCompatClient } from './cpu/cpu-compat.client';
import type { InventoryConfig } from './config';
import { EventOutbox } from './events/event-outbox';
import { Hearing } from './hosts/hearing';

const config: InventoryConfig = { hostDownAfterMs: 60_000, hostCheckIntervalMs: 60_000, massSilence: { share: 0.55, minHosts: 3 }, heartbeatFlushMs: 60_000, vmStartTimeoutMs: 1_000, reconcileIntervalMs: 60_000 };

describe('inventory at scale', () => {
  jest.setTimeout(60_000);
  let db: TestDatabase;
  let ds: DataSource;
  let hosts: HostsService;
  let plans: ClusterCpuPlans;
  let clusters: ClustersService;
  let outbox: EventOutbox;
  let hearing: Hearing;
  const published: { type: string; data: unknown }[] = [];
  const planCalls = jest.fn();
  // the catalog's answers, as cpu-compat gives them (only what registration and the plan read of them)
  const cpu = {
    evaluate: async (c: HostCpu) => evaluateHost({ features: c.features, vendor: c.vendor }),
    plan: async (hs: { id: string; cpu: HostCpu }[]) => {
      await planCalls(hs.length); // a test may hold the plan here
      return planCluster(hs.map((h) => ({ id: h.id, vendor: h.cpu.vendor, features: h.cpu.features })));
    },
  } as unknown as CpuCompatClient;
  const instances = new Map<string, string>();

  const registration = (hostId: string, mode: string, cluster = 'plans'): HostRegistration => {
    if (!instances.has(hostId)) instances.set(hostId, randomUUID());
    return {
      hostId,
      clusterName: cluster,
      hostname: hostId,
      cpu: simulatedHostCpu(mode),
      memoryMiB: 65_536,
      vcpus: 32,
      driver: 'sim',
      migrationAddress: '127.0.0.1:1',
      instanceId: instances.get(hostId)!,
      vms: [],
    };
  };
  const register = async (hostId: string, mode: string, cluster?: string) => (await hosts.register(registration(hostId, mode, cluster))).cluster.id;
  const lastBeat = async (hostId: string): Promise<number> =>
    ((await ds.query('SELECT last_heartbeat_at FROM hosts WHERE id = $1', [hostId])) as { last_heartbeat_at: Date }[])[0]!.last_heartbeat_at.getTime();

  beforeAll(async () => {
    db = await startTestDatabase('inventory-scale');
    await ensureDatabaseAndSchema(db.url, 'inventory');
    ds = await initializeServiceDataSource(serviceDataSourceOptions({ url: db.url, schema: 'inventory', entities: inventoryEntities, migrations: inventoryMigrations }));
    const events = { publish: async (def: { type: string }, data: unknown) => void published.push({ type: def.type, data }), reachable: true };
    plans = new ClusterCpuPlans(ds, cpu);
    clusters = new ClustersService(ds, cpu, plans);
    outbox = new EventOutbox(ds, events as never, config);
    hearing = new Hearing({ reachable: true, onReconnect: () => () => undefined } as never, config);
    hosts = new HostsService(ds, cpu, clusters, plans, outbox, config, hearing);
  });
  afterAll(async () => {
    await ds?.destroy();
    await db?.stop();
  });

  describe('the cluster CPU plan', () => {
    let clusterId: string;

    it('given a cluster of two hosts, then cpu-compat plans it once and the next VM gets the stored mode', async () => {
      clusterId = await register('plan-a', 'Skylake-Server');
      await register('plan-b', 'Haswell');
      planCalls.mockClear();
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'Haswell' });
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'Haswell' });
      expect(planCalls).toHaveBeenCalledTimes(1);
    });

    it('given a host with an older CPU joins, then the plan is made again and has its mode', async () => {
      await register('plan-c', 'IvyBridge');
      planCalls.mockClear();
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'IvyBridge' });
      expect(planCalls).toHaveBeenCalledWith(3);
    });

    it('given a host registers again with the same CPU, then the stored plan still counts', async () => {
      await register('plan-c', 'IvyBridge');
      planCalls.mockClear();
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'IvyBridge' });
      expect(planCalls).not.toHaveBeenCalled();
    });

    it('given a host comes back with another CPU, then the plan is made again', async () => {
      await register('plan-c', 'Skylake-Server');
      planCalls.mockClear();
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'Haswell' });
      expect(planCalls).toHaveBeenCalledTimes(1);
    });

    it("given the cluster's detail, then it counts the hosts and answers the stored plan: no host is listed, cpu-compat is not asked", async () => {
      planCalls.mockClear();
      const detail = await clusters.detail(clusterId);
      expect(detail).toMatchObject({ id: clusterId, hostCount: 3, effectiveMode: 'Haswell', plan: { mode: 'Haswell', reason: expect.any(String) } });
      expect(detail).not.toHaveProperty('hosts');
      expect(planCalls).not.toHaveBeenCalled();
    });

    it('given a host joins while a plan is being made, then that plan is not stored as current', async () => {
      const other = await register('race-a', 'Haswell', 'race');
      planCalls.mockClear();
      // the registration commits between the plan's read of the hosts and its store
      planCalls.mockImplementationOnce(() => ds.transaction((m) => plans.invalidate(m, other)));
      await plans.get(other);
      await plans.get(other);
      expect(planCalls).toHaveBeenCalledTimes(2);
    });

    it('given many hosts of few CPUs, then cpu-compat is sent one host of each CPU, and the mode is that of every host', async () => {
      const kinds = ['Skylake-Server', 'Haswell', 'Skylake-Server', 'Haswell', 'Skylake-Server', 'Haswell'];
      let few = '';
      for (const [i, mode] of kinds.entries()) few = await register(`few-${i}`, mode, 'few-cpus');
      planCalls.mockClear();
      expect(await plans.get(few)).toMatchObject({ mode: 'Haswell', reason: planCluster(kinds.map((m, i) => ({ id: `few-${i}`, ...simulatedHostCpu(m) }))).reason });
      expect(planCalls).toHaveBeenCalledWith(2);
      // an AMD host among them: a mix of vendors has no mode, as with every host sent
      await register('few-amd', 'EPYC-Rome', 'few-cpus');
      expect(await plans.get(few)).toMatchObject({ mode: null, reason: expect.stringMatching(/mixed vendors \(AMD, Intel\)/) });
    });

    it('keeps one cluster\'s plan apart from another\'s', async () => {
      planCalls.mockClear();
      expect(await plans.get(clusterId)).toMatchObject({ mode: 'Haswell' });
      expect(planCalls).not.toHaveBeenCalled();
    });
  });

  describe('heartbeats', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `beat-${String(i).padStart(2, '0')}`);
    const digest = vmDigest([]);
    const beat = (hostId: string, d = digest) => ({ hostId, at: new Date().toISOString(), vmCount: 0, instanceId: instances.get(hostId)!, vmDigest: d });
    let batch: HeartbeatBatch;
    let query: jest.SpyInstance;

    beforeAll(async () => {
      for (const id of ids) await register(id, 'Haswell', 'beats');
      batch = new HeartbeatBatch(ds, hosts, config, hearing);
      for (const id of ids) await batch.receive(beat(id)); // the first beats too go to the batch: its flush writes them, and then knows them
      await batch.flush();
      // every statement, whichever way it goes (TypeORM's query, a prepared statement on the pool), reaches pg's Client.query
      query = jest.spyOn(Client.prototype, 'query');
    });
    afterAll(() => query.mockRestore());
    afterEach(() => query.mockClear());

    it('given a beat that changes nothing, then nothing is written until the flush, which writes it', async () => {
      const before = await lastBeat(ids[0]!);
      query.mockClear();
      await batch.receive(beat(ids[0]!));
      expect(query).not.toHaveBeenCalled();
      expect(await lastBeat(ids[0]!)).toBe(before);
      await new Promise((r) => setTimeout(r, 5));
      await batch.flush();
      expect(await lastBeat(ids[0]!)).toBeGreaterThan(before);
    });

    it('given 20 hosts beat with nothing new, then one statement writes them all', async () => {
      const before = await Promise.all(ids.map(lastBeat));
      query.mockClear();
      for (const id of ids) await batch.receive(beat(id));
      await batch.flush();
      expect(query).toHaveBeenCalledTimes(1);
      const after = await Promise.all(ids.map(lastBeat));
      after.forEach((t, i) => expect(t).toBeGreaterThan(before[i]!));
    });

    it('given 100 flushes of 20 hosts, then each row is written in place, in its page, and the table does not grow', async () => {
      // a row's page is its ctid's block: an update that is not heap-only writes the new version elsewhere
      const where = async () =>
        ((await ds.query('SELECT id, (ctid::text::point)[0]::int AS block FROM hosts WHERE id = ANY($1::text[]) ORDER BY id', [ids])) as { id: string; block: number }[]).map(
          (r) => `${r.id}@${r.block}`,
        );
      const size = async (): Promise<number> => Number((await ds.query("SELECT pg_relation_size('hosts') AS bytes"))[0].bytes);
      // A row version can be pruned only once no session of this database holds a snapshot older than it: one
      // that does (a test's work still running in the background) makes the next updates leave the page. So
      // the loop starts once no other session holds one, and what held one meanwhile is shown if a row moved.
      const snapshotHolders = async (): Promise<string[]> =>
        ((await ds.query(
          `SELECT pid, state, left(query, 120) AS query FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL`,
        )) as { pid: number; state: string; query: string }[]).map((a) => `${a.pid} ${a.state}: ${a.query}`);
      await waitFor('no other session of the database to hold a snapshot', async () => (await snapshotHolders()).length === 0, { timeoutMs: 10_000 });
      const [blocksBefore, sizeBefore, beatBefore] = [await where(), await size(), await lastBeat(ids[0]!)];
      const heldMeanwhile = new Set<string>();
      for (let flush = 0; flush < 100; flush++) {
        for (const id of ids) await batch.receive(beat(id));
        await batch.flush();
        for (const h of await snapshotHolders()) heldMeanwhile.add(h);
      }
      expect(await lastBeat(ids[0]!)).toBeGreaterThan(beatBefore);
      const rows = await where();
      if (rows.join() !== blocksBefore.join()) console.warn(`rows moved; sessions of the database holding a snapshot meanwhile: ${[...heldMeanwhile].join('; ') || 'none seen'}`);
      expect(rows).toEqual(blocksBefore);
      expect(await size()).toBe(sizeBefore);
    });

    it('given a beat that repeats the VM list of the digest already stored, then it waits for the flush like a liveness beat', async () => {
      await batch.flush();
      query.mockClear();
      await batch.receive({ ...beat(ids[5]!), vms: [] });
      expect(query).not.toHaveBeenCalled();
      await batch.flush();
      await batch.idle();
      expect(query).toHaveBeenCalledTimes(1);
    });

    it('given a repeated VM list whose digest the row does not hold as its reported list, then the flush hands it on and the list is written', async () => {
      await ds.query("UPDATE hosts SET reported_digest = 'stale', reported_vms = NULL WHERE id = $1", [ids[6]]);
      await batch.receive({ ...beat(ids[6]!), vms: [] });
      await batch.flush();
      await batch.idle();
      expect(await ds.query('SELECT reported_digest, reported_vms FROM hosts WHERE id = $1', [ids[6]])).toEqual([{ reported_digest: digest, reported_vms: [] }]);
    });

    it('given a beat with another VM digest but not its list, then it is written at once', async () => {
      const changed = vmDigest([{ vmId: randomUUID(), state: 'running' }]);
      await batch.receive(beat(ids[1]!, changed));
      expect(await ds.query('SELECT vm_digest FROM hosts WHERE id = $1', [ids[1]])).toEqual([{ vm_digest: changed }]);
    });

    describe('a new VM set with its list (what each VM created or gone makes its host send)', () => {
      const hostsOf = ids.slice(10, 20);
      const setOf = (hostId: string) => [{ vmId: randomUUID(), state: 'running' as const }, { vmId: `${hostId}-vm`, state: 'paused' as const }];
      const stored = async (hostId: string) =>
        ((await ds.query('SELECT vm_digest, reported_vms, reported_digest, reported_at FROM hosts WHERE id = $1', [hostId])) as {
          vm_digest: string;
          reported_vms: unknown;
          reported_digest: string;
          reported_at: Date;
        }[])[0]!;
      const dbNow = async (): Promise<number> => ((await ds.query('SELECT now() AS t')) as { t: Date }[])[0]!.t.getTime();

      it('given 10 hosts each send one, then nothing is written until the flush, which writes every set and list in one statement', async () => {
        const sets = new Map(hostsOf.map((id) => [id, setOf(id)]));
        await batch.flush();
        query.mockClear();
        for (const [id, vms] of sets) await batch.receive({ ...beat(id, vmDigest(vms)), vms });
        expect(query).not.toHaveBeenCalled();
        await batch.flush();
        await batch.idle();
        expect(query).toHaveBeenCalledTimes(1);
        for (const [id, vms] of sets) {
          const row = await stored(id);
          expect(row).toMatchObject({ vm_digest: vmDigest(vms), reported_vms: vms, reported_digest: vmDigest(vms) });
        }
        // the flush knows them now: the next beats of these sets (no list) wait for the flush too
        query.mockClear();
        for (const [id, vms] of sets) await batch.receive(beat(id, vmDigest(vms)));
        expect(query).not.toHaveBeenCalled();
      });

      it('given a beat of that set without the list before the flush, then the flush still writes the list', async () => {
        const vms = setOf(hostsOf[0]!);
        await batch.receive({ ...beat(hostsOf[0]!, vmDigest(vms)), vms });
        await batch.receive(beat(hostsOf[0]!, vmDigest(vms)));
        query.mockClear();
        await batch.flush();
        await batch.idle();
        expect(query).toHaveBeenCalledTimes(1);
        expect(await stored(hostsOf[0]!)).toMatchObject({ vm_digest: vmDigest(vms), reported_vms: vms, reported_digest: vmDigest(vms) });
      });

      it('given one arrives while a single write of its host is under way, then it is judged after that write, and the flush writes it', async () => {
        const host = hostsOf[4]!;
        const first = vmDigest([{ vmId: randomUUID(), state: 'running' }]);
        const vms = setOf(host);
        const written = batch.receive(beat(host, first)); // a new digest without its list: written at once
        await batch.receive({ ...beat(host, vmDigest(vms)), vms });
        await written;
        await batch.flush();
        await batch.idle();
        expect(await stored(host)).toMatchObject({ vm_digest: vmDigest(vms), reported_vms: vms, reported_digest: vmDigest(vms) });
      });

      it('gives the list the time it was received, not the flush\'s: the reconciler must not take it for newer than it is', async () => {
        const vms = setOf(hostsOf[1]!);
        const before = await dbNow();
        await batch.receive({ ...beat(hostsOf[1]!, vmDigest(vms)), vms });
        await new Promise((r) => setTimeout(r, 300));
        const flushedAfter = await dbNow();
        await batch.flush();
        const at = (await stored(hostsOf[1]!)).reported_at.getTime();
        expect(at).toBeGreaterThanOrEqual(before);
        expect(at).toBeLessThan(flushedAfter);
      });

      it("given another replica wrote a later set meanwhile, then the flush does not write over it: the beat is written on its own", async () => {
        const mine = setOf(hostsOf[2]!);
        await ds.query('UPDATE hosts SET vm_digest = $2 WHERE id = $1', [hostsOf[2], 'another-replicas-digest']);
        await batch.receive({ ...beat(hostsOf[2]!, vmDigest(mine)), vms: mine });
        query.mockClear();
        await batch.flush();
        await batch.idle();
        // the batch's UPDATE wrote nothing for it; HostsService.heartbeat then wrote it, as any beat of a row that moved on
        expect(query).toHaveBeenCalledTimes(2);
        expect(await stored(hostsOf[2]!)).toMatchObject({ vm_digest: vmDigest(mine), reported_vms: mine });
      });

      it('given its host was marked down meanwhile, then the flush hands it on, and it brings the host up with host.up and its list', async () => {
        const vms = setOf(hostsOf[3]!);
        await ds.query("UPDATE hosts SET state = 'down' WHERE id = $1", [hostsOf[3]]);
        await outbox.committed();
        published.length = 0;
        await batch.receive({ ...beat(hostsOf[3]!, vmDigest(vms)), vms });
        await batch.flush();
        await batch.idle();
        await outbox.committed();
        expect(await ds.query('SELECT state FROM hosts WHERE id = $1', [hostsOf[3]])).toEqual([{ state: 'up' }]);
        expect(published).toEqual([{ type: HostUp.type, data: { hostId: hostsOf[3] } }]);
        expect(await stored(hostsOf[3]!)).toMatchObject({ vm_digest: vmDigest(vms), reported_vms: vms });
      });
    });

    it('given a host was marked down meanwhile, then its noted beat brings it up again with host.up', async () => {
      await ds.query("UPDATE hosts SET state = 'down' WHERE id = $1", [ids[2]]);
      await outbox.committed(); // the registrations' events
      published.length = 0;
      await batch.receive(beat(ids[2]!));
      await batch.flush();
      await batch.idle();
      await outbox.committed(); // the flush the beat asked for, and one after it
      expect(await ds.query('SELECT state FROM hosts WHERE id = $1', [ids[2]])).toEqual([{ state: 'up' }]);
      expect(published).toEqual([{ type: HostUp.type, data: { hostId: ids[2] } }]);
    });

    it('given 50 hosts that are not registered yet beat, then one flush costs two statements for them all and writes no row', async () => {
      const strangers = Array.from({ length: 50 }, (_, i) => `unregistered-${i}`);
      for (const id of strangers) instances.set(id, randomUUID());
      query.mockClear();
      for (const id of strangers) await batch.receive(beat(id));
      expect(query).not.toHaveBeenCalled();
      await batch.flush();
      await batch.idle();
      // the batched UPDATE, then one lookup of them all: none registered, so none is written one by one
      expect(query).toHaveBeenCalledTimes(2);
      expect(await ds.query('SELECT count(*)::int AS n FROM hosts WHERE id = ANY($1::text[])', [strangers])).toEqual([{ n: 0 }]);
    });

    it('given a registered host this replica never wrote, marked down, then its first beat goes to the batch and the flush brings it up with host.up', async () => {
      const fresh = new HeartbeatBatch(ds, hosts, config, hearing); // another replica, or this one restarted
      await ds.query("UPDATE hosts SET state = 'down' WHERE id = $1", [ids[4]]);
      await outbox.committed();
      published.length = 0;
      query.mockClear();
      await fresh.receive(beat(ids[4]!));
      expect(query).not.toHaveBeenCalled();
      await fresh.flush();
      await fresh.idle();
      await outbox.committed();
      expect(await ds.query('SELECT state FROM hosts WHERE id = $1', [ids[4]])).toEqual([{ state: 'up' }]);
      expect(published).toEqual([{ type: HostUp.type, data: { hostId: ids[4] } }]);
    });

    it('given another agent process took the host over, then the old process\'s noted beat is refused', async () => {
      const taker = randomUUID();
      await ds.query('UPDATE hosts SET agent_instance_id = $2 WHERE id = $1', [ids[3], taker]);
      const before = await lastBeat(ids[3]!);
      await batch.receive(beat(ids[3]!));
      await batch.flush();
      await batch.idle();
      expect(await lastBeat(ids[3]!)).toBe(before);
      expect(await ds.query('SELECT agent_instance_id FROM hosts WHERE id = $1', [ids[3]])).toEqual([{ agent_instance_id: taker }]);
    });
  });

  describe('the host list (inventory.host.list, GET /api/v1/hosts)', () => {
    const stored = async (id: string): Promise<string[]> => ((await ds.query('SELECT cpu_features FROM hosts WHERE id = $1', [id])) as { cpu_features: string[] }[])[0]!.cpu_features;

    it('given hosts of two CPU kinds, then every page names each host its own feature list and carries each list once, as one host alone shows it', async () => {
      const ids = ['list-a', 'list-b', 'list-c', 'list-d', 'list-e'];
      let clusterId = '';
      for (const [i, id] of ids.entries()) clusterId = await register(id, i % 2 ? 'IvyBridge' : 'Haswell', 'listing');
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        // pages of 2: a feature list's first host in the cluster is on another page than its next ones
        const page = await hosts.page({ clusterId, limit: 2, ...(cursor ? { cursor } : {}) });
        expect(HostPageSchema.parse(page)).toEqual(page);
        expect(Object.keys(page.featureSets).sort()).toEqual([...new Set(page.items.map((h) => h.cpu.featureSet))].sort());
        for (const h of page.items) {
          expect(page.featureSets[h.cpu.featureSet]).toEqual(await stored(h.id));
          // the view reads its times as epoch milliseconds: the same instants as the driver's Dates
          const [times] = await ds.query('SELECT last_heartbeat_at, registered_at FROM hosts WHERE id = $1', [h.id]);
          expect([h.lastHeartbeatAt, h.registeredAt]).toEqual([times.last_heartbeat_at.toISOString(), times.registered_at.toISOString()]);
          expect(withFeatures(h, page.featureSets)).toEqual(await hosts.get(h.id));
          seen.push(h.id);
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(ids);
      const all = (await hosts.page({ clusterId, limit: 100 })).items;
      expect(all[0]!.cpu.featureSet).not.toEqual(all[1]!.cpu.featureSet);
      expect(all[0]!.cpu.featureSet).toEqual(all[2]!.cpu.featureSet);
    });

    it('given VMs in every state and a reservation, then each host counts its VMs in every state, not the VMs coming to it, on a page and alone; its cluster counts its hosts', async () => {
      const clusterId = await register('count-a', 'Haswell', 'counting');
      await register('count-b', 'Haswell', 'counting');
      await register('count-c', 'Haswell', 'counting');
      const vms = ['starting', 'running', 'stopped', 'error'].map((state, i) => ({ id: randomUUID(), state, host: i < 3 ? 'count-a' : 'count-c' }));
      for (const v of vms) {
        await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, 'count-' || $4, $2, $3, 512, 1, 'Haswell', $4)`, [v.id, clusterId, v.host, v.state]);
      }
      // a migration of count-a's running VM to count-b: reserved there, still on count-a
      await ds.query(`INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus) VALUES ($1, $2, 'count-b', 512, 1)`, [randomUUID(), vms[1]!.id]);
      const counts = async () => {
        const seen: Record<string, number | undefined> = {};
        let cursor: string | undefined;
        do {
          const page = await hosts.page({ clusterId, limit: 2, ...(cursor ? { cursor } : {}) }); // two pages
          for (const h of page.items) seen[h.id] = h.vmCount;
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        return seen;
      };
      expect(await counts()).toEqual({ 'count-a': 3, 'count-b': 0, 'count-c': 1 });
      expect((await hosts.get('count-a')).vmCount).toBe(3);
      // and the cluster counts its hosts, in a list of clusters as alone
      const listed = (await clusters.page({ limit: 1000 })).items;
      expect(listed.find((c) => c.id === clusterId)?.hostCount).toBe(3);
      expect(listed.every((c) => Number.isInteger(c.hostCount))).toBe(true);
      expect((await clusters.detail(clusterId)).hostCount).toBe(3);
      expect((await clusters.setAllocationRatios(clusterId, { cpuAllocationRatio: 4 })).hostCount).toBe(3);
      expect((await hosts.get('count-b')).allocatedVcpus).toBe(1); // held there, but not its VM yet

      // step 9 moves it: the counts follow
      await ds.query(`WITH moved AS (UPDATE vms SET host_id = 'count-b' WHERE id = $1) DELETE FROM reservations WHERE vm_id = $1`, [vms[1]!.id]);
      expect(await counts()).toEqual({ 'count-a': 2, 'count-b': 1, 'count-c': 1 });
      await ds.query('DELETE FROM vms WHERE id = $1', [vms[3]!.id]);
      expect((await hosts.get('count-c')).vmCount).toBe(0);
    });

    it('given a host comes back with another CPU, then its list and its digest follow', async () => {
      const clusterId = await register('swap-a', 'Haswell', 'swapping');
      await register('swap-b', 'Haswell', 'swapping');
      const placement = new PlacementHosts(ds);
      const before = await placement.page({ clusterId, limit: 10 });
      expect(before.hosts[0]!.cpu.featureSet).toBe(before.hosts[1]!.cpu.featureSet);

      await register('swap-a', 'IvyBridge', 'swapping');
      const after = await placement.page({ clusterId, limit: 10 });
      expect(after.hosts[0]!.cpu.featureSet).not.toBe(after.hosts[1]!.cpu.featureSet);
      expect(after.hosts[1]!.cpu.featureSet).toBe(before.hosts[1]!.cpu.featureSet);
      expect(after.featureSets[after.hosts[0]!.cpu.featureSet]).toEqual(await stored('swap-a'));
      const listed = await hosts.page({ clusterId, limit: 10 });
      const [a, b] = listed.items.map((h) => withFeatures(h, listed.featureSets));
      expect(a!.cpu.features).toEqual(simulatedHostCpu('IvyBridge').features);
      expect(a!.cpu.features).toEqual(await stored('swap-a'));
      expect(b!.cpu.features).toEqual(await stored('swap-b'));
    });
  });

  describe('the placement list (inventory.host.placement-list)', () => {
    it('given a cluster of two CPU kinds, then every page matches the full host list, and each feature list travels once per page', async () => {
      const ids = ['place-a', 'place-b', 'place-c', 'place-d', 'place-e'];
      let clusterId = '';
      for (const [i, id] of ids.entries()) clusterId = await register(id, i % 2 ? 'IvyBridge' : 'Haswell', 'placing');
      // what each host holds: a running VM on place-a, a stopped one on place-b (not held), a reservation on place-c
      const vm = randomUUID();
      await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, 'p1', $2, 'place-a', 4096, 3, 'Haswell', 'running'), ($3, 'p2', $2, 'place-b', 2048, 1, 'Haswell', 'stopped')`, [vm, clusterId, randomUUID()]);
      await ds.query(`INSERT INTO reservations (migration_id, vm_id, host_id, memory_mib, vcpus) VALUES ($1, $2, 'place-c', 1024, 2)`, [randomUUID(), vm]);
      await ds.query('UPDATE clusters SET cpu_allocation_ratio = 2 WHERE id = $1', [clusterId]);
      const placement = new PlacementHosts(ds);
      const listed = await hosts.page({ clusterId, limit: 100 });
      const full = new Map(listed.items.map((h) => [h.id, withFeatures(h, listed.featureSets)]));

      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await placement.page({ clusterId, limit: 2, ...(cursor ? { cursor } : {}) });
        pages++;
        expect(Object.keys(page.featureSets).length).toBeLessThanOrEqual(page.hosts.length);
        for (const h of page.hosts) {
          const f = full.get(h.id)!;
          const weighed = Object.fromEntries(Object.keys(h).filter((k) => k !== 'cpu').map((k) => [k, f[k as keyof typeof f]]));
          expect(h).toEqual({ ...weighed, cpu: { vendor: f.cpu.vendor, featureSet: h.cpu.featureSet } });
          expect(Object.keys(h).sort()).toEqual(Object.keys(PlacementHostSchema.shape).sort());
          expect(page.featureSets[h.cpu.featureSet]).toEqual(f.cpu.features);
          seen.push(h.id);
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(pages).toBe(3);
      expect(seen).toEqual(ids);
      expect(full.get('place-a')).toMatchObject({ allocatedMemoryMiB: 4096, allocatedVcpus: 3, capacityVcpus: 64 });
      expect(full.get('place-b')).toMatchObject({ allocatedMemoryMiB: 0 });
      expect(full.get('place-c')).toMatchObject({ allocatedMemoryMiB: 1024, allocatedVcpus: 2 });
      // the two kinds of CPU, two digests; the same kind, the same digest
      const all = await placement.page({ clusterId, limit: 1000 });
      expect(Object.keys(all.featureSets)).toHaveLength(2);
      expect(all.hosts[0]!.cpu.featureSet).toBe(all.hosts[2]!.cpu.featureSet);
      expect(all.hosts[0]!.cpu.featureSet).not.toBe(all.hosts[1]!.cpu.featureSet);
      expect(all.nextCursor).toBeNull();
    });

    it("given one VM's placement (`for`), then it lists the hosts it includes and each CPU's best passing ones, and counts the others by rule and CPU", async () => {
      const ids = Array.from({ length: 10 }, (_, i) => `bound-${i}`);
      let clusterId = '';
      for (const [i, id] of ids.entries()) clusterId = await register(id, i % 2 ? 'IvyBridge' : 'Haswell', 'bounded');
      await ds.query(`UPDATE hosts SET state = 'down' WHERE id = 'bound-1'`);
      await ds.query(`UPDATE hosts SET maintenance = true WHERE id = 'bound-2'`);
      // what each host holds (65,536 MiB and 32 vCPUs each, 4 vCPUs per core allowed): bound-3 lacks memory, bound-4 vCPUs
      const held: [string, number, number][] = [['bound-3', 64_000, 1], ['bound-4', 1_024, 127], ['bound-5', 8_192, 1], ['bound-8', 4_096, 1], ['bound-9', 16_384, 1]];
      for (const [hostId, memory, vcpus] of held) {
        await ds.query(`INSERT INTO vms (id, name, cluster_id, host_id, memory_mib, vcpus, cpu_baseline, state) VALUES ($1, $2, $3, $4, $5, $6, 'IvyBridge', 'running')`, [randomUUID(), `on-${hostId}`, clusterId, hostId, memory, vcpus]);
      }
      const placement = new PlacementHosts(ds);
      const everyHost = await placement.page({ clusterId, limit: 1000 });
      const asPaged = new Map(everyHost.hosts.map((h) => [h.id, h]));
      const vm = { memoryMiB: 2_048, vcpus: 2, sourceHostId: 'bound-0', named: 0 };

      // one of each CPU: the lowest utilisation after placement (bound-6 and bound-7 hold nothing), plus the included down host and busy one
      const one = (await placement.candidates(clusterId, { ...vm, include: ['bound-1', 'bound-9'], perCpu: 1 }, 1000))!;
      expect(one.hosts.map((h) => h.id).sort()).toEqual(['bound-1', 'bound-6', 'bound-7', 'bound-9']);
      for (const h of one.hosts) expect(h).toEqual(asPaged.get(h.id));
      expect(Object.keys(one.featureSets).sort()).toEqual(Object.keys(everyHost.featureSets).sort());
      const haswell = asPaged.get('bound-6')!.cpu;
      const ivy = asPaged.get('bound-7')!.cpu;
      expect(one.unlisted.byRule).toEqual({ source: 1, down: 0, maintenance: 1, memory: 1, vcpus: 1 });
      expect(one.unlisted.passing.sort((a, b) => a.vendor.localeCompare(b.vendor) || a.featureSet.localeCompare(b.featureSet))).toEqual(
        [{ ...haswell, count: 1 }, { ...ivy, count: 1 }].sort((a, b) => a.vendor.localeCompare(b.vendor) || a.featureSet.localeCompare(b.featureSet)),
      );

      // two of each: bound-8 (4 GiB held) comes in before bound-5 (8 GiB); every host is listed or counted once
      const two = (await placement.candidates(clusterId, { ...vm, include: [], perCpu: 2 }, 1000))!;
      expect(two.hosts.map((h) => h.id).sort()).toEqual(['bound-5', 'bound-6', 'bound-7', 'bound-8']);
      const counted = Object.values(two.unlisted.byRule).reduce((a, b) => a + b, 0) + two.unlisted.passing.reduce((a, p) => a + p.count, 0);
      expect(two.hosts.length + counted).toBe(ids.length);
      expect(two.unlisted).toEqual({ byRule: { source: 1, down: 1, maintenance: 1, memory: 1, vcpus: 1 }, passing: [{ ...ivy, count: 1 }] });

      // and the hosts a placement names: the first two failing a rule by id, the first two of each CPU passing them
      const named = (await placement.candidates(clusterId, { ...vm, include: [], perCpu: 1, named: 2 }, 1000))!;
      expect(named.hosts.map((h) => h.id).sort()).toEqual(['bound-0', 'bound-1', 'bound-5', 'bound-6', 'bound-7', 'bound-8']);
      expect(named.unlisted).toEqual({ byRule: { source: 0, down: 0, maintenance: 1, memory: 1, vcpus: 1 }, passing: [{ ...ivy, count: 1 }] });

      // more hosts than the answer may hold: no bounded answer
      expect(await placement.candidates(clusterId, { ...vm, include: ids, perCpu: 1 }, 5)).toBeNull();
    });
  });
});
