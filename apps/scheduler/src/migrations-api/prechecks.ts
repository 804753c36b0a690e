import { ErrorCode, FlexmigError, GetHost, GetVm, type Host, type Vm } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import type { ChosenPlacement, PlacementService } from '../placement/placement.service';

// Pre-checks: small named functions, each raising one specific error (STYLE.md 7).
export function checkVmRunning(vm: Vm): void {
  if (vm.state !== 'running') {
    throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${vm.name} is ${vm.state}; only a running VM is live-migrated`, { vmId: vm.id, state: vm.state });
  }
}
export function checkNotToSelf(vm: Vm, target: Host): void {
  if (vm.hostId === target.id) {
    throw new FlexmigError(ErrorCode.UnableToMigrateToSelf, `VM ${vm.name} already runs on ${target.id}: choose another target host`, {
      vmId: vm.id,
      hostId: target.id,
    });
  }
}
export function checkTargetUsable(target: Host): void {
  if (target.state !== 'up') {
    throw new FlexmigError(ErrorCode.HostDown, `target host ${target.id} is down (its agent stopped heartbeating)`, { hostId: target.id });
  }
  if (target.maintenance) {
    throw new FlexmigError(ErrorCode.HostInMaintenance, `target host ${target.id} is in maintenance and takes no VMs`, { hostId: target.id });
  }
}
export function checkSameCluster(vm: Vm, target: Host): void {
  if (vm.clusterId !== target.clusterId) {
    throw new FlexmigError(ErrorCode.Conflict, `target host ${target.id} is in another cluster than VM ${vm.name}; live migration stays within a cluster`, {
      vmClusterId: vm.clusterId,
      hostClusterId: target.clusterId,
    });
  }
}

/** How often placement chooses again when the host it chose went down or into maintenance meanwhile. */
const PLACEMENT_ATTEMPTS = 3;

/**
 * The VM and its target for a migration (or its prediction), every check passed: the target named, or the
 * one placement chooses (with why, and why each other host was passed over). A chosen host that went down
 * or into maintenance between placement's read of the hosts and the check (an evacuation of several hosts
 * at once puts them into maintenance one after another) is not the caller's error: placement chooses
 * again, from a fresh read (whatever `hostsReadSince` allowed the first time), up to PLACEMENT_ATTEMPTS times.
 * `hold` (an admission): placement holds the host it chose (PlacementService.place); the caller releases it
 * when its admission ends, and a throw here releases it before it leaves.
 */
export async function vmAndTarget(
  bus: NatsBus,
  placer: PlacementService,
  input: { vmId: string; targetHostId?: string },
  opts: { hostsReadSince?: number; hold?: boolean } = {},
): Promise<{ vm: Vm; target: Host; placement: ChosenPlacement | null }> {
  // a named target is read beside the VM (one round trip, not two); the VM's errors still come first
  const [vmRead, namedRead] = await Promise.allSettled([bus.request(GetVm, { vmId: input.vmId }), input.targetHostId ? bus.request(GetHost, { hostId: input.targetHostId }) : undefined]);
  if (vmRead.status === 'rejected') throw vmRead.reason;
  const { vm } = vmRead.value;
  checkVmRunning(vm);
  try {
    return await targetOf(bus, placer, vm, input, namedRead, opts);
  } catch (e) {
    if (opts.hold) placer.release(vm.id); // a VM that holds nothing (a named target) releases nothing
    throw e;
  }
}

async function targetOf(
  bus: NatsBus,
  placer: PlacementService,
  vm: Vm,
  input: { targetHostId?: string },
  namedRead: PromiseSettledResult<{ host: Host } | undefined>,
  opts: { hostsReadSince?: number; hold?: boolean },
): Promise<{ vm: Vm; target: Host; placement: ChosenPlacement | null }> {
  for (let attempt = 1; ; attempt++) {
    const placement = input.targetHostId ? null : await placer.place(vm, attempt === 1 ? opts : opts.hold ? { hold: true } : {});
    let target: Host;
    if (input.targetHostId) {
      if (namedRead.status === 'rejected') throw namedRead.reason;
      target = namedRead.value!.host;
    } else {
      target = (await bus.request(GetHost, { hostId: placement!.chosen })).host;
    }
    checkNotToSelf(vm, target);
    try {
      checkTargetUsable(target);
    } catch (e) {
      if (placement && attempt < PLACEMENT_ATTEMPTS) continue;
      throw e;
    }
    checkSameCluster(vm, target);
    return { vm, target, placement };
  }
}
