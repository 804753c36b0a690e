import { Init1764130000000 } from './1764130000000-init';
import { VmCpuFeatures1764150000000 } from './1764150000000-vm-cpu-features';
import { Reconciliation1764200000000 } from './1764200000000-reconciliation';
import { AllocationRatios1764300000000 } from './1764300000000-allocation-ratios';
import { ClusterCpuPlans1764400000000 } from './1764400000000-cluster-cpu-plans';
import { ListPages1764500000000 } from './1764500000000-list-pages';
import { HostAllocations1764600000000 } from './1764600000000-host-allocations';
import { HostLivenessInPlace1764700000000 } from './1764700000000-host-liveness-in-place';
import { EventOutbox1764800000000 } from './1764800000000-event-outbox';
import { HostVmCounts1764900000000 } from './1764900000000-host-vm-counts';
import { VmsByName1765000000000 } from './1765000000000-vms-by-name';

/** In order. Never edit one that has shipped: add the next. */
export const inventoryMigrations = [Init1764130000000, VmCpuFeatures1764150000000, Reconciliation1764200000000, AllocationRatios1764300000000, ClusterCpuPlans1764400000000, ListPages1764500000000, HostAllocations1764600000000, HostLivenessInPlace1764700000000, EventOutbox1764800000000, HostVmCounts1764900000000, VmsByName1765000000000];
