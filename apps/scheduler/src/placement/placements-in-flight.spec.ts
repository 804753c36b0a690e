import { noInboundLoad } from './placement';
import { PLACEMENT_HOLD_MAX_MS, PlacementsInFlight } from './placements-in-flight';

const c1 = '11111111-1111-4111-8111-111111111111';
const c2 = '22222222-2222-4222-8222-222222222222';
const vm = (n: number, clusterId = c1, memoryMiB = 1_024, vcpus = 2) => ({ id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, clusterId, memoryMiB, vcpus });

describe('PlacementsInFlight', () => {
  it('counts each hold of the cluster on its host as one more migration, its memory and vCPUs promised, over what was admitted', () => {
    const f = new PlacementsInFlight();
    f.hold(vm(1), 'a');
    f.hold(vm(2, c1, 2_048, 1), 'a');
    f.hold(vm(3), 'b');
    f.hold(vm(4, c2), 'a'); // another cluster's
    const admitted = { a: { migrations: 2, promisedMemoryMiB: 512, promisedVcpus: 1 } };
    expect(f.addedTo(vm(9), admitted)).toEqual({
      a: { migrations: 4, promisedMemoryMiB: 512 + 1_024 + 2_048, promisedVcpus: 1 + 2 + 1 },
      b: { ...noInboundLoad, migrations: 1, promisedMemoryMiB: 1_024, promisedVcpus: 2 },
    });
    expect(admitted).toEqual({ a: { migrations: 2, promisedMemoryMiB: 512, promisedVcpus: 1 } }); // not changed
    expect(f.addedTo(vm(9, c2), {})).toEqual({ a: { migrations: 1, promisedMemoryMiB: 1_024, promisedVcpus: 2 } });
  });

  it('leaves out the hold of the VM being placed, keeps one hold per VM, and forgets a released one', () => {
    const f = new PlacementsInFlight();
    f.hold(vm(1), 'a');
    expect(f.addedTo(vm(1), {})).toEqual({});
    f.hold(vm(1), 'b'); // placed again: the hold moves
    expect(f.addedTo(vm(2), {})).toEqual({ b: { migrations: 1, promisedMemoryMiB: 1_024, promisedVcpus: 2 } });
    f.release(vm(1).id);
    expect(f.addedTo(vm(2), {})).toEqual({});
    expect(f.size).toBe(0);
  });

  it('stops counting a hold nobody released after PLACEMENT_HOLD_MAX_MS', () => {
    let now = 1_000_000;
    const f = new PlacementsInFlight(() => now);
    f.hold(vm(1), 'a');
    now += PLACEMENT_HOLD_MAX_MS;
    expect(f.addedTo(vm(2), {})).toEqual({ a: { migrations: 1, promisedMemoryMiB: 1_024, promisedVcpus: 2 } });
    now += 1;
    expect(f.addedTo(vm(2), {})).toEqual({});
    expect(f.size).toBe(0);
  });
});
