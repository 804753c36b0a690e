import { ErrorCode, GetHost, GetVm, type Host, type Vm } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import type { PlacementService } from '../placement/placement.service';
import { vmAndTarget } from './prechecks';

const vm = { id: 'vm-1', name: 'web', hostId: 'src', clusterId: 'c1', state: 'running' } as Vm;
const host = (id: string, over: Partial<Host> = {}) => ({ id, clusterId: 'c1', state: 'up', maintenance: false, ...over }) as Host;

/** A bus that answers GetVm with the VM and GetHost from `hosts` as they are at the time of asking. */
function busOf(hosts: Map<string, Host>): NatsBus {
  return {
    request: jest.fn(async (contract: unknown, req: { hostId?: string }) => {
      if (contract === GetVm) return { vm };
      if (contract === GetHost) return { host: hosts.get(req.hostId!) };
      throw new Error('unexpected request');
    }),
  } as unknown as NatsBus;
}
const placerChoosing = (...chosen: string[]) => {
  const place = jest.fn();
  for (const c of chosen) place.mockResolvedValueOnce({ chosen: c, reason: `chose ${c}`, passedOver: [] });
  return { place, release: jest.fn() } as unknown as PlacementService & { place: jest.Mock; release: jest.Mock };
};

describe('vmAndTarget', () => {
  it('given the chosen host went into maintenance after placement read the hosts, then placement chooses again and the other host is the target', async () => {
    const hosts = new Map([['dst-a', host('dst-a', { maintenance: true })], ['dst-b', host('dst-b')]]);
    const placer = placerChoosing('dst-a', 'dst-b');
    const r = await vmAndTarget(busOf(hosts), placer, { vmId: vm.id });
    expect(r.target.id).toBe('dst-b');
    expect(r.placement?.chosen).toBe('dst-b');
    expect(placer.place).toHaveBeenCalledTimes(2);
  });

  it('given an earlier read of the hosts was allowed (an evacuation), then a placement made again reads them fresh', async () => {
    const hosts = new Map([['dst-a', host('dst-a', { maintenance: true })], ['dst-b', host('dst-b')]]);
    const placer = placerChoosing('dst-a', 'dst-b');
    await expect(vmAndTarget(busOf(hosts), placer, { vmId: vm.id }, { hostsReadSince: 1_000 })).resolves.toMatchObject({ target: { id: 'dst-b' } });
    expect(placer.place.mock.calls.map((c) => c[1])).toEqual([{ hostsReadSince: 1_000 }, {}]);
  });

  it('given every choice goes down before it is checked, then after three placements the last host\'s error is the answer', async () => {
    const hosts = new Map([['d1', host('d1', { state: 'down' })], ['d2', host('d2', { state: 'down' })], ['d3', host('d3', { state: 'down' })]]);
    const placer = placerChoosing('d1', 'd2', 'd3', 'd1');
    await expect(vmAndTarget(busOf(hosts), placer, { vmId: vm.id })).rejects.toMatchObject({ code: ErrorCode.HostDown, details: { hostId: 'd3' } });
    expect(placer.place).toHaveBeenCalledTimes(3);
  });

  it('given an admission holds its placement, then each placement made again holds too, and a refusal releases the hold before it is thrown', async () => {
    const hosts = new Map([['d1', host('d1', { state: 'down' })], ['d2', host('d2', { maintenance: true })], ['d3', host('d3', { state: 'down' })], ['ok', host('ok')]]);
    const placer = placerChoosing('d1', 'd2', 'd3');
    await expect(vmAndTarget(busOf(hosts), placer, { vmId: vm.id }, { hostsReadSince: 1_000, hold: true })).rejects.toMatchObject({ code: ErrorCode.HostDown });
    expect(placer.place.mock.calls.map((c) => c[1])).toEqual([{ hostsReadSince: 1_000, hold: true }, { hold: true }, { hold: true }]);
    expect(placer.release).toHaveBeenCalledWith(vm.id);
    // accepted: the hold stays, for the caller to release when its admission ends
    const accepted = placerChoosing('ok');
    await expect(vmAndTarget(busOf(hosts), accepted, { vmId: vm.id }, { hold: true })).resolves.toMatchObject({ target: { id: 'ok' } });
    expect(accepted.release).not.toHaveBeenCalled();
  });

  it('given a target the caller named is in maintenance, then that is the caller\'s error at once: nothing is placed', async () => {
    const hosts = new Map([['dst-a', host('dst-a', { maintenance: true })]]);
    const placer = placerChoosing();
    await expect(vmAndTarget(busOf(hosts), placer, { vmId: vm.id, targetHostId: 'dst-a' })).rejects.toMatchObject({ code: ErrorCode.HostInMaintenance });
    expect(placer.place).not.toHaveBeenCalled();
  });

  it('given a named target, then the VM and the target are read at once, and a missing VM is the error even when the host is missing too', async () => {
    let inFlight = 0;
    let most = 0;
    const answers = new Map<unknown, () => unknown>([
      [GetVm, () => ({ vm })],
      [GetHost, () => ({ host: host('dst-a') })],
    ]);
    const bus = {
      request: async (contract: unknown) => {
        most = Math.max(most, ++inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight--;
        return answers.get(contract)!();
      },
    } as unknown as NatsBus;
    await expect(vmAndTarget(bus, placerChoosing(), { vmId: vm.id, targetHostId: 'dst-a' })).resolves.toMatchObject({ target: { id: 'dst-a' }, placement: null });
    expect(most).toBe(2);
    const vmMissing = { code: ErrorCode.NotFound, message: 'vm vm-1 does not exist' };
    answers.set(GetVm, () => Promise.reject(vmMissing));
    answers.set(GetHost, () => Promise.reject({ code: ErrorCode.NotFound, message: 'host dst-a does not exist' }));
    await expect(vmAndTarget(bus, placerChoosing(), { vmId: vm.id, targetHostId: 'dst-a' })).rejects.toBe(vmMissing);
  });
});
