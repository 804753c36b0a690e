import type { Vm } from '@flexmig/contracts';
import { type InboundLoad, noInboundLoad } from './placement';

/**
 * How long a placement's hold counts at most. Its admission (the prediction's wait included) ends long
 * before; the bound only keeps a hold that no one released (a crash of the request's code path) from
 * weighing on a host for good.
 */
export const PLACEMENT_HOLD_MAX_MS = 30_000;

type HeldVm = Pick<Vm, 'id' | 'clusterId' | 'memoryMiB' | 'vcpus'>;

interface Hold {
  clusterId: string;
  hostId: string;
  memoryMiB: number;
  vcpus: number;
  at: number;
}

/**
 * The hosts this replica's placements chose for migrations it is still admitting: not yet rows of
 * `migrations`, so not yet in the inbound load a placement reads (PlacementService.inboundLoad). Placements
 * asked at the same moment (an evacuation of 10 hosts asks 10 at once) read the same load, found the same
 * least loaded host and all chose it: at 1,000 hosts, the first ten VMs of ten evacuations went to one
 * target, where they queued on its row lock at step 1 and ran at up to twice the time of a migration
 * alone (docs/scale.md). A placement that will be admitted holds its host until the admission ends,
 * and every placement of the cluster counts the holds as inbound migrations of that size, as Nova's
 * resource tracker counts its in-progress claims.
 *
 * Per replica and in memory: two replicas can still choose alike, as before; what decides whether a host
 * has room stays inventory's reservation at step 1. One hold per VM: placing a VM again replaces it.
 */
export class PlacementsInFlight {
  private readonly holds = new Map<string, Hold>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxAgeMs = PLACEMENT_HOLD_MAX_MS,
  ) {}

  /** The VM's migration is being admitted to `hostId`: count it there until `release`. */
  hold(vm: HeldVm, hostId: string): void {
    this.holds.set(vm.id, { clusterId: vm.clusterId, hostId, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, at: this.now() });
  }

  /** The admission ended (its row counts from now on, or nothing was admitted). */
  release(vmId: string): void {
    this.holds.delete(vmId);
  }

  /** How many holds count now (metrics and tests). */
  get size(): number {
    this.forgetOld();
    return this.holds.size;
  }

  /**
   * `inbound` with the holds of the VM's cluster added, each as one more migration with its memory and
   * vCPUs promised (a migration not yet past step 1 holds no reservation). The VM's own hold is left out:
   * it is being placed again. A new object; `inbound` is not changed.
   */
  addedTo(vm: Pick<Vm, 'id' | 'clusterId'>, inbound: Readonly<Record<string, InboundLoad>>): Record<string, InboundLoad> {
    this.forgetOld();
    const total: Record<string, InboundLoad> = { ...inbound };
    for (const [vmId, h] of this.holds) {
      if (vmId === vm.id || h.clusterId !== vm.clusterId) continue;
      const load = total[h.hostId] ?? noInboundLoad;
      total[h.hostId] = {
        migrations: load.migrations + 1,
        promisedMemoryMiB: load.promisedMemoryMiB + h.memoryMiB,
        promisedVcpus: load.promisedVcpus + h.vcpus,
      };
    }
    return total;
  }

  private forgetOld(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (const [vmId, h] of this.holds) if (h.at < oldest) this.holds.delete(vmId);
  }
}
