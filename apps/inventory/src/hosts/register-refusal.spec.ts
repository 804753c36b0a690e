import { ErrorCode, FlexmigError, type HostRegistration } from '@flexmig/contracts';
import { HostsService } from './hosts.service';

// Found by the fuzzer (apps/inventory/src/fuzz.int.spec.ts): a registration naming a new cluster, with a CPU
// that cpu-compat refuses (EMPTY_FEATURE_LIST), was refused but left the new cluster behind.
const registration: HostRegistration = {
  hostId: 'h1',
  clusterName: 'I_-',
  hostname: 'h1',
  cpu: { vendor: 'Hygon', modelName: 'x', features: [] },
  memoryMiB: 1024,
  vcpus: 1,
  driver: 'sim',
  migrationAddress: '127.0.0.1:1',
  instanceId: 'agent-process-1',
  vms: [],
};

function service(opts: { evaluate: () => Promise<unknown>; existingClusterId?: string }) {
  const created = { id: 'new-cluster', name: 'I_-', imcMode: null };
  const manager = {
    getRepository: () => ({
      findOneOrFail: async () => created,
      findOne: async () => (opts.existingClusterId ? { id: 'h1', clusterId: opts.existingClusterId } : null),
      save: async () => undefined,
    }),
  };
  const db = { transaction: jest.fn(async (work: (m: unknown) => Promise<unknown>) => work(manager)) };
  const clusters = { findForHost: jest.fn(async () => undefined), resolveForHost: jest.fn(async () => created) };
  const cpu = { evaluate: jest.fn(opts.evaluate), verdict: jest.fn() };
  const hosts = new HostsService(db as never, cpu as never, clusters as never, { invalidate: jest.fn() } as never, {} as never, { hostDownAfterMs: 30_000 } as never, {} as never);
  return { hosts, db, clusters, manager };
}

describe('a refused host registration writes nothing', () => {
  it('given a CPU cpu-compat refuses, then no cluster is resolved (created) and no transaction runs', async () => {
    const { hosts, db, clusters } = service({ evaluate: () => Promise.reject(new FlexmigError(ErrorCode.EmptyFeatureList, 'no features')) });
    await expect(hosts.register(registration)).rejects.toMatchObject({ code: ErrorCode.EmptyFeatureList });
    expect(clusters.resolveForHost).not.toHaveBeenCalled();
    expect(clusters.findForHost).not.toHaveBeenCalled();
    expect(db.transaction).not.toHaveBeenCalled();
  });

  it('given a refusal inside the transaction (the host is in another cluster), then the new cluster was made in that transaction', async () => {
    const { hosts, clusters, manager } = service({ evaluate: async () => ({ maxImcMode: null, ladder: ['Westmere'] }), existingClusterId: 'other-cluster' });
    await expect(hosts.register(registration)).rejects.toMatchObject({ code: ErrorCode.Conflict });
    // created with the transaction's manager: rolled back with the refusal
    expect(clusters.resolveForHost).toHaveBeenCalledWith(registration, manager);
  });
});
