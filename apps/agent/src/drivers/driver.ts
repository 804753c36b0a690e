import { z } from 'zod';
import type { CpuidRow } from '@flexmig/cpu-models';
import { AgentVmSchema, HostCpu, MigrationProgress, QueryStreamEnd, ReplyOf, StepCommand, TransferStats, UuidSchema, VmSpec, VmSpecSchema, AgentVm } from '@flexmig/contracts';

/** A source's word on how its stream ended: QueryStreamEnd's reply, less the migration id it answers for. */
export type StreamEndWord = Omit<ReplyOf<typeof QueryStreamEnd>, 'migrationId'>;

export type ProgressSink = (p: Omit<MigrationProgress, 'migrationId' | 'vmId' | 'hostId' | 'at' | 'step'>) => void;

/**
 * What a hypervisor must do for flexmig. One method per saga step and per compensation, each safe to
 * call again after it succeeded (the agent also de-duplicates repeats by migration, step and role).
 */
export interface HypervisorDriver {
  readonly kind: 'sim' | 'qemu';
  /**
   * Step 4 ends with the guest already paused (QEMU stops it at `pre-switchover`, inside step 4): the agent
   * then pauses it for step 5 at once (`pauseSource`, which only records the pause) and reports step 5 done
   * with step 4, so that no round trip of step 5's own lies inside the guest's downtime. False: step 5 is a
   * command of its own.
   */
  readonly pausesAtSwitchover: boolean;
  /**
   * The target's half of step 6 ends with the guest running: as soon as its state has loaded, the agent
   * resumes it (`resumeTarget`) and reports step 7 done with step 6, so that no commit or round trip of step
   * 7's own lies inside the guest's downtime. From that command on the source copy is never resumed by a
   * rollback unless the target answers that its copy never ran (docs/switchover.md). False: step 7 is a
   * command of its own.
   */
  readonly resumesWithTransferState: boolean;
  hostCpu(): Promise<HostCpu>;
  capacity(): { memoryMiB: number; vcpus: number };
  listVms(): AgentVm[];
  startVm(spec: VmSpec): Promise<void>;

  /** Step 2, target: prepare an incoming VM that waits for the stream; says where it listens, if it does. */
  prepareIncoming(cmd: StepCommand): Promise<{ incomingAddress?: string } | void>;
  /** Compensation of 2 and 6 on the target. */
  destroyIncoming(vmId: string): Promise<void>;
  /**
   * After step 3, source (only where `pausesAtSwitchover`): whether this migration's stream already holds the
   * guest stopped at the switchover (the final copy runs or ran). An idle guest's does: QEMU follows its first
   * pass with the pause at once, so step 3 ends there, and the agent reports steps 4 and 5 done with it
   * (`pauseSource` records the pause) rather than wait for step 4's command inside the guest's downtime.
   * Absent: step 4 is always a command of its own.
   */
  heldAtSwitchover?(vmId: string, migrationId: string): boolean;
  /** Step 3, source: the first full copy of memory. */
  transferMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats>;
  /** Step 4, source: iterate until what is left fits the downtime budget (per the policy). */
  syncMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats>;
  /** Compensation of 3 and 4: cancel the stream; the VM keeps running on the source. */
  cancelTransfer(vmId: string): Promise<void>;
  /** Step 5, source: pause the guest (downtime starts). Returns when it stopped. */
  pauseSource(vmId: string): Promise<Date>;
  /** Compensation of 5 and 6 on the source: resume the guest where it was. */
  resumeSource(vmId: string): Promise<void>;
  /** Step 6, source: send CPU and device state and the last dirty pages. */
  transferState(cmd: StepCommand): Promise<TransferStats>;
  /**
   * Step 6, source, asked by the target's agent (QueryStreamEnd) before it starts the guest: how the outgoing
   * stream of `migrationId` ended here, answered as soon as it ends or after `waitMs` (`active`). Only
   * `completed` (the copy here stays paused, nothing resumes it on its own) and `gone` (no process runs it)
   * let the target start its copy: QEMU resumes a source whose switchover failed, even after the target
   * loaded the whole state.
   */
  streamEnd(vmId: string, migrationId: string, waitMs: number): Promise<StreamEndWord>;
  /**
   * Step 6, target, after the guest runs here: what the source said of the guest's memory that held data
   * (`QueryStreamEnd`'s `residentBytes`). A driver whose copy cannot tell it itself keeps it for predictions.
   */
  noteArrival?(vmId: string, arrival: { residentBytes: number }): void;
  /** Step 6, target: the state has arrived and loaded; the guest is paused, ready to run. */
  confirmIncoming(cmd: StepCommand): Promise<void>;
  /**
   * `fn` is told as soon as the driver hears an incoming copy's whole state load here (its stream completed),
   * which is often before step 6 arrives: the agent then asks the source's word ahead (source-word-ahead.ts).
   * Absent: the driver learns it only inside step 6 (sim), and step 6 asks the source then.
   */
  onIncomingLoaded?(fn: (vmId: string, migrationId: string) => void): void;
  /** Step 7, target: run the guest. Returns when it runs. */
  resumeTarget(vmId: string): Promise<Date>;
  /** Step 8, source: stop the source copy and release its resources. */
  stopSource(vmId: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Fences a copy of a VM (a split brain, docs/reconciliation.md): pause its guest and keep it, never
   * destroy it. Idempotent; NOT_FOUND when the VM is not on this host.
   */
  pauseVm(vmId: string): Promise<void>;
  /**
   * The driver's VM records as plain JSON, for drivers that keep them only in memory (sim): the agent
   * saves them after every command and hands them back at start, so a restarted agent finds the VMs it
   * ran. Drivers whose VMs outlive the agent on their own (qemu: processes plus state files) omit these.
   */
  snapshot?(): unknown;
  restore?(snapshot: unknown): void;
  /**
   * Verifies a VM's guest memory on this host (the target, after step 7): the guest's write pattern is
   * intact and it still advances. Only drivers with a real guest implement it (qemu).
   */
  checkMemory?(vmId: string): Promise<GuestMemoryCheck>;
  /**
   * What a running VM's guest sees of its CPU (issue 12): qemu, the CPUID rows the guest executed after the
   * call (read back over QMP); sim, the features its model presents. NOT_FOUND when the VM is not on this host.
   */
  guestCpu(vmId: string): Promise<GuestCpuObservation>;
  /**
   * A running VM's dirty rate and working set (issue 12, docs/prediction.md): qemu, QMP calc-dirty-rate
   * sampled on a schedule (the latest sample, or a new one when `fresh` or older than `maxAgeMs`); sim, its
   * model. NOT_FOUND when the VM is not on this host.
   */
  dirtyRate?(vmId: string, opts: { fresh?: boolean; maxAgeMs?: number }): Promise<DirtyRateObservation>;
  /**
   * The migration link's bandwidth towards another host, when the driver can tell: qemu, a probe QEMU
   * migrated into the target's link sink at `targetAddress` (its openLinkSink); sim, its model link.
   */
  probeLink?(targetHostId: string, targetAddress: string): Promise<{ bandwidthBytesPerSec: number; origin: 'model' | 'probe'; measuredAt: Date; detail: string }>;
  /**
   * The target's end of a link probe (qemu): a one-shot TCP sink on the migration listen host that accepts
   * one connection until `expiresAt`, discards at most `maxBytes` and closes. Drivers without it need no sink.
   */
  openLinkSink?(sourceHostId: string, maxBytes: number): Promise<{ address: string; expiresAt: Date }>;
}

/** The outcome of {@link HypervisorDriver.dirtyRate}. */
export interface DirtyRateObservation {
  dirtyRateBytesPerSec: number;
  workingSetBytes: number;
  memoryBytes: number;
  /** The memory that holds data (qemu: the resident part of the guest's RAM), what a first pass sends; absent when unknown. */
  residentBytes?: number;
  origin: 'calc-dirty-rate' | 'model';
  measuredAt: Date;
  detail: string;
}

/** The outcome of {@link HypervisorDriver.guestCpu}. */
export type GuestCpuObservation =
  | { source: 'guest'; rows: CpuidRow[]; accel: 'tcg' | 'kvm'; sample: number }
  | { source: 'model'; baseline: string; features: string[] };

/** The outcome of {@link HypervisorDriver.checkMemory}. */
export interface GuestMemoryCheck {
  ok: boolean;
  pages: number;
  badPages: number;
  /** Page index where the stopped guest was in its pass, or null. */
  boundaryPage: number | null;
  examples: Array<{ address: number; value: number; previous: number }>;
  advancedAfterCheck: boolean;
}

/** A VM record as the sim driver persists it (snapshot/restore); the file is validated with this when read. */
export const PersistedVmSchema = z.object({ spec: VmSpecSchema, state: AgentVmSchema.shape.state, migrationId: UuidSchema.optional() });
export type PersistedVm = z.infer<typeof PersistedVmSchema>;
export const PersistedVmsSchema = z.array(PersistedVmSchema);
