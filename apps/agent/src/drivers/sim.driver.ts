import { hostname } from 'node:os';
import { AgentVm, ErrorCode, FlexmigError, HOST_PASSTHROUGH_BASELINE, HostCpu, StepCommand, StreamEnd, TransferStats, VmSpec } from '@flexmig/contracts';
import { getBaseline } from '@flexmig/cpu-models';
import {
  BYTES_PER_MIB,
  DEFAULT_DEVICE_STATE_BYTES,
  DEFAULT_MAX_PASSES,
  DEFAULT_PASS_OVERHEAD_MS,
  DEFAULT_SWITCHOVER_FIXED_MS,
  type MigrationPolicy as ModelPolicy,
  type MigrationResult,
  PrecopySimulation,
  type SimulationEvent,
  type SimulationPhase,
  applyDecision,
  cappedBandwidthBytesPerSec,
  completionTimeoutMs,
  decideConvergence,
  lastProgressMs,
  simModelDowntimeLimitMs,
} from '@flexmig/migration-model';
import { DirtyRateObservation, GuestCpuObservation, HypervisorDriver, PersistedVm, ProgressSink } from './driver';
import { ConvergenceFailureCode, convergenceFailure, modelPolicyFor, noLeverReason, stalledWithoutLever, transferCancelled } from './precopy-policy';
import { SimClock, realClock } from './sim-clock';

const MiB = BYTES_PER_MIB;
/** How often a running transfer reports progress, in real time: the contract says "at least once a second". */
export const defaultProgressIntervalMs = 250;

export interface SimDriverOptions {
  hostCpu: HostCpu;
  memoryMiB: number;
  vcpus: number;
  /** The host's migration link. A policy's bandwidth cap lowers the pre-copy rate; the switchover copy is never capped (QEMU lifts max-bandwidth for it). */
  bandwidthMiBps: number;
  /** Real ms per simulated ms: 1 is life, 0.1 ten times faster, 0 instant (no waiting at all). */
  timeScale: number;
  /** Guest behaviour of VMs whose spec has no `workload`. */
  defaultDirtyRateMiBps: number;
  defaultWorkingSetMiB: number;
  // ---- optional model knobs (defaults: the model's, @flexmig/migration-model constants.ts) ----
  deviceStateBytes?: number;
  passOverheadMs?: number;
  switchoverFixedMs?: number;
  /** Bound on pre-copy passes per migration: also what ends a run at timeScale 0. */
  maxPasses?: number;
  /** Real ms between two progress reports while a pass runs (≤ 1000). */
  progressIntervalMs?: number;
  /**
   * Fail a sync at once with NOT_CONVERGING when the model says it can never converge and the policy
   * has no lever left (default true). False waits, like KubeVirt, for the completion or progress timeout.
   */
  failFastWhenStalled?: boolean;
  /**
   * Switch over as the qemu driver does (agent env SIM_SWITCHOVER=qemu): step 5 done inside step 4 and step
   * 7 inside step 6 (HypervisorDriver.pausesAtSwitchover, resumesWithTransferState). Default false: each on
   * its own command.
   */
  switchoverAsQemu?: boolean;
  /** Where real time comes from (tests inject a VirtualClock). */
  clock?: SimClock;
}

type TransferStatus = 'running' | 'ready' | 'switched' | 'failed' | 'cancelled';

/** A migration's memory stream on the source: the model, the policy steering it, and its real-time state. */
interface Transfer {
  migrationId: string;
  sim: PrecopySimulation;
  policy: ModelPolicy;
  linkBytesPerSec: number;
  status: TransferStatus;
  /** How the switchover will go, once pre-copy stopped: stop-and-copy, or post-copy after resume. */
  mode?: 'precopy' | 'postcopy';
  abort: AbortController;
  /** The first failure, given again to a repeated step 4. */
  failure?: FlexmigError;
  /** Step 6's answer, given again to a repeat. */
  finalStats?: TransferStats;
  result?: MigrationResult;
  /** Those waiting for the stream's end (streamEnd): woken when step 6 finishes it, or it fails or stops. */
  endWaiters: Set<() => void>;
}

interface SimVm {
  spec: VmSpec;
  state: AgentVm['state'];
  migrationId?: string;
  transfer?: Transfer;
}

/**
 * A simulated hypervisor. VMs are records; a migration's memory copy is the pre-copy model of
 * `@flexmig/migration-model` (memory, dirty rate, working set, bandwidth, downtime limit, throttle)
 * run pass by pass in scaled time, steered by `decideConvergence` with the wire policy, so a bigger
 * VM takes longer to move, a busy one needs more passes or auto-converge, and the figures agree with
 * `analyticPrecopy`.
 *
 * Steps and the model:
 *   3 transferMemory  runs pass 1 (all of RAM) and stops at its end, which is a pass boundary.
 *   4 syncMemory      asks the policy at that boundary and at every later one (and when a timeout falls
 *                     due mid-pass), applies throttle / raise-downtime / switch-to-postcopy / abort, and
 *                     returns once pre-copy stopped: the remaining fits the budget, or post-copy was
 *                     chosen. The model is run with pauseBeforeSwitchover, so it then waits.
 *   5 pauseSource     pauses the VM record. The saga's own time between steps 4 and 7 is not simulated;
 *                     the scheduler measures it (pausedAt → resumedAt).
 *   6 transferState   releases the switchover: the last dirty pages and the device state at the link's
 *                     full speed, plus the fixed cost; `downtimeMs` in the stats is that copy. After a
 *                     post-copy switch only the device state is copied (downtime S/Bs + f); the model
 *                     pulls the remaining pages after resume, and the driver does not make step 7 wait
 *                     for that pull (stats: `remainingBytes` = the pages pulled after resume).
 */
export class SimDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  /**
   * By default the sim pauses in step 5 and resumes in step 7, each on its command (the fault matrix's rows at
   * pause-source and resume-target land there); `switchoverAsQemu` does both inside steps 4 and 6.
   */
  readonly pausesAtSwitchover: boolean;
  readonly resumesWithTransferState: boolean;
  private readonly vms = new Map<string, SimVm>();
  private readonly clock: SimClock;
  private readonly progressIntervalMs: number;
  private closed = false;

  constructor(private readonly o: SimDriverOptions) {
    if (!(o.timeScale >= 0 && Number.isFinite(o.timeScale))) throw new RangeError(`timeScale ${o.timeScale} must be a finite number ≥ 0`);
    this.clock = o.clock ?? realClock;
    this.progressIntervalMs = Math.min(1000, Math.max(1, o.progressIntervalMs ?? defaultProgressIntervalMs));
    this.pausesAtSwitchover = this.resumesWithTransferState = o.switchoverAsQemu === true;
  }

  async hostCpu(): Promise<HostCpu> {
    return this.o.hostCpu;
  }

  capacity() {
    return { memoryMiB: this.o.memoryMiB, vcpus: this.o.vcpus };
  }

  listVms(): AgentVm[] {
    return [...this.vms.values()].map((v) => ({
      vmId: v.spec.id,
      state: v.state,
      memoryMiB: v.spec.memoryMiB,
      ...(v.migrationId ? { migrationId: v.migrationId } : {}),
    }));
  }

  /** In-flight transfers are not kept: after a restart a migration's copy is gone and must be redone or undone. */
  snapshot(): PersistedVm[] {
    return [...this.vms.values()].map((v) => ({ spec: v.spec, state: v.state, ...(v.migrationId ? { migrationId: v.migrationId } : {}) }));
  }

  restore(snapshot: unknown): void {
    for (const v of (snapshot as PersistedVm[]) ?? []) {
      // a paused VM stays paused: whether it resumes here or runs on the target is the scheduler's call
      if (v?.spec?.id && !this.vms.has(v.spec.id)) this.vms.set(v.spec.id, { spec: v.spec, state: v.state, migrationId: v.migrationId });
    }
  }

  /**
   * The model of what a QEMU/KVM guest sees: its baseline's features (and the bits the baseline's QEMU
   * model always presents), or the host's own for host-passthrough, plus `hypervisor`.
   */
  async guestCpu(vmId: string): Promise<GuestCpuObservation> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host`);
    if (vm.state !== 'running') throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${vmId} is ${vm.state} on this host: only a running guest sees a CPU`);
    const baseline = vm.spec.cpuBaseline;
    const presented = baseline === HOST_PASSTHROUGH_BASELINE ? this.o.hostCpu.features : [...getBaseline(baseline).features, ...(getBaseline(baseline).presentedExtra ?? [])];
    return { source: 'model', baseline, features: [...new Set([...presented, 'hypervisor'])].sort() };
  }

  async startVm(spec: VmSpec): Promise<void> {
    const existing = this.vms.get(spec.id);
    if (existing && existing.state !== 'stopped') return;
    this.vms.set(spec.id, { spec, state: 'running' });
  }

  async prepareIncoming(cmd: StepCommand): Promise<void> {
    const existing = this.vms.get(cmd.vm.id);
    if (existing && existing.state !== 'stopped' && existing.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${cmd.vm.id} already exists on this host (${existing.state})`);
    }
    if (existing && existing.migrationId === cmd.migrationId && existing.state !== 'stopped') return;
    this.vms.set(cmd.vm.id, { spec: cmd.vm, state: 'incoming', migrationId: cmd.migrationId });
  }

  async destroyIncoming(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return;
    // a copy that runs is never destroyed, nor reported destroyed (the saga would resume the source next)
    if (vm.state === 'running') throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} runs on this host: the copy is not destroyed; resolve the migration (flexmig resolve)`, { vmId }, false);
    this.vms.delete(vmId);
  }

  // ---- step 3 ---------------------------------------------------------------------------------------

  async transferMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    if (vm.state !== 'running') {
      throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${cmd.vm.id} is ${vm.state} on this host: only a running VM's memory is copied`);
    }
    // a new attempt starts a new stream: whatever an older one left is dropped
    if (vm.transfer) this.stop(vm.transfer, 'a new transfer of the VM started');
    const t = this.newTransfer(vm, cmd);
    vm.transfer = t;
    await this.drive(vm, t, progress, { stopAfterFirstPass: true });
    return this.stats(t);
  }

  // ---- step 4 ---------------------------------------------------------------------------------------

  async syncMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} for migration ${cmd.migrationId} is under way (step 3 first)`);
    }
    if (t.failure) throw t.failure;
    if (t.status === 'cancelled') throw transferCancelled(cmd.vm.id, cmd.migrationId, 'earlier');
    await this.drive(vm, t, progress, { stopAfterFirstPass: false });
    return this.stats(t);
  }

  /** Compensation of 3 and 4: stops the stream at once; the VM keeps (or goes back to) running on the source. */
  async cancelTransfer(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return;
    if (vm.transfer) this.stop(vm.transfer, 'cancelTransfer');
    vm.transfer = undefined;
    vm.migrationId = undefined;
    if (vm.state === 'paused') vm.state = 'running';
  }

  // ---- steps 5 and 6 ---------------------------------------------------------------------------------

  async pauseSource(vmId: string): Promise<Date> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    vm.state = 'paused';
    return new Date();
  }

  /** Split-brain fence: the record is paused (a transfer in progress, if any, is left to its migration). */
  async pauseVm(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.state === 'stopped') throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host: nothing to pause`);
    if (vm.state === 'running') vm.state = 'paused';
  }

  async resumeSource(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host: nothing to resume`);
    if (vm.transfer) this.stop(vm.transfer, 'the VM resumed on the source');
    vm.state = 'running';
    vm.transfer = undefined;
    vm.migrationId = undefined;
  }

  async transferState(cmd: StepCommand): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} is under way`);
    if (t.finalStats) return t.finalStats;
    if (vm.state !== 'paused') throw new FlexmigError(ErrorCode.Conflict, `VM ${cmd.vm.id} must be paused before its state is sent (step 5)`);
    if (t.status !== 'ready' || t.sim.phase !== 'pre-switchover') {
      throw new FlexmigError(
        ErrorCode.Conflict,
        `the memory of VM ${cmd.vm.id} is not ready for the switchover (${t.failure ? `the transfer failed: ${t.failure.message}` : `transfer ${t.status}, model phase ${t.sim.phase}`}); finish step 4 first`,
      );
    }
    const sim = t.sim;
    sim.continueSwitchover();
    t.status = 'switched';
    // The model's switchover is short and cannot be cancelled (the guest is paused); run it on the
    // virtual clock, then wait its downtime in real time. For post-copy the downtime is the device state
    // only; the pull of the remaining pages that follows is not waited for (see the class comment).
    const events = sim.runToEnd();
    const done = events.find((e): e is Extract<SimulationEvent, { type: 'completed' }> => e.type === 'completed');
    if (!done) throw new FlexmigError(ErrorCode.Internal, `the model did not complete the switchover of VM ${cmd.vm.id} (phase ${sim.phase})`);
    const r = done.result;
    t.result = r;
    if (this.o.timeScale > 0) await this.clock.sleep(r.downtimeMs * this.o.timeScale, t.abort.signal);
    t.finalStats = {
      passes: r.passes,
      bytesTransferred: r.bytesTransferred,
      remainingBytes: r.postcopyBytes,
      downtimeMs: r.downtimeMs,
      throttlePct: r.throttlePct,
    };
    wakeAll(t.endWaiters);
    return t.finalStats;
  }

  async streamEnd(vmId: string, migrationId: string, waitMs: number): Promise<{ status: StreamEnd; detail: string }> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const vm = this.vms.get(vmId);
      if (!vm) return { status: 'gone', detail: `VM ${vmId} is not on this host` };
      const t = vm.transfer;
      if (!t || t.migrationId !== migrationId) return { status: 'failed', detail: `VM ${vmId} streams no migration ${migrationId} from this host: its copy here runs or may run` };
      if (t.finalStats && vm.state === 'running') return { status: 'failed', detail: `the stream of VM ${vmId} completed, but its copy here was resumed (the rollback)` };
      if (t.finalStats) return { status: 'completed', detail: `the stream of VM ${vmId} completed; its copy here stays paused` };
      if (t.failure || t.status === 'failed' || t.status === 'cancelled' || t.abort.signal.aborted) {
        return { status: 'failed', detail: `the stream of VM ${vmId} ${t.failure ? `failed: ${t.failure.message}` : 'was cancelled'}` };
      }
      const left = deadline - Date.now();
      if (left <= 0) return { status: 'active', detail: `the stream of VM ${vmId} is ${t.status} (model phase ${t.sim.phase})` };
      await new Promise<void>((r) => {
        t.endWaiters.add(r);
        setTimeout(r, left).unref();
      });
    }
  }

  // ---- target side and the end ---------------------------------------------------------------------

  async confirmIncoming(cmd: StepCommand): Promise<void> {
    const vm = this.vms.get(cmd.vm.id);
    if (!vm || vm.migrationId !== cmd.migrationId || (vm.state !== 'incoming' && vm.state !== 'paused')) {
      throw new FlexmigError(ErrorCode.Conflict, `no incoming VM ${cmd.vm.id} for migration ${cmd.migrationId} on this host (step 2 first)`);
    }
    vm.state = 'paused';
  }

  async resumeTarget(vmId: string): Promise<Date> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `no incoming VM ${vmId} on this host`);
    if (vm.state === 'incoming') throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} has not received its state yet (step 6)`);
    vm.state = 'running';
    vm.migrationId = undefined;
    return new Date();
  }

  async stopSource(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (vm?.transfer) this.stop(vm.transfer, 'the source copy stopped');
    this.vms.delete(vmId);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const vm of this.vms.values()) if (vm.transfer) this.stop(vm.transfer, 'the driver closed');
  }

  /** The model's figures of a VM's current or last transfer (diagnostics, tests, benchmarks). */
  transferOf(vmId: string): { status: TransferStatus; mode?: 'precopy' | 'postcopy'; sim: PrecopySimulation; result?: MigrationResult } | undefined {
    const t = this.vms.get(vmId)?.transfer;
    return t && { status: t.status, ...(t.mode ? { mode: t.mode } : {}), sim: t.sim, ...(t.result ? { result: t.result } : {}) };
  }

  // ---- internals -------------------------------------------------------------------------------------

  private source(vmId: string, migrationId: string): SimVm {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    vm.migrationId = migrationId;
    return vm;
  }

  /**
   * The guest of this migration: the command's VM spec (the scheduler's copy), else the one it was
   * started with. A `workload` without a working set dirties all of its memory (the model's default);
   * a VM without a workload gets the driver's defaults.
   */
  private guest(vm: SimVm, cmd: StepCommand) {
    return this.guestOf(cmd.vm.workload ? cmd.vm : vm.spec, cmd.vm.memoryMiB);
  }

  private guestOf(spec: VmSpec, memoryMiB = spec.memoryMiB) {
    const memoryBytes = memoryMiB * MiB;
    const w = spec.workload;
    const dirtyRateBytesPerSec = (w ? w.dirtyRateMiBps : this.o.defaultDirtyRateMiBps) * MiB;
    const workingSetMiB = w ? (w.workingSetMiB ?? memoryMiB) : this.o.defaultWorkingSetMiB;
    return { memoryBytes, dirtyRateBytesPerSec, workingSetBytes: Math.min(memoryBytes, workingSetMiB * MiB) };
  }

  /** The guest model's figures: what the model will run a migration of this VM with (no sampling). */
  async dirtyRate(vmId: string): Promise<DirtyRateObservation> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.state === 'stopped') throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    const g = this.guestOf(vm.spec);
    const from = vm.spec.workload ? "the VM's workload" : "the agent's default workload (SIM_DIRTY_RATE_MIBPS, SIM_WORKING_SET_MIB)";
    return { ...g, origin: 'model', measuredAt: new Date(), detail: `the sim driver's guest model, from ${from}: not measured` };
  }

  /** The model link every sim migration from this host runs at (SIM_BANDWIDTH_MIBPS). */
  async probeLink(targetHostId: string): Promise<{ bandwidthBytesPerSec: number; origin: 'model'; measuredAt: Date; detail: string }> {
    return {
      bandwidthBytesPerSec: this.o.bandwidthMiBps * MiB,
      origin: 'model',
      measuredAt: new Date(),
      detail: `the sim driver's model link towards ${targetHostId} (${this.o.bandwidthMiBps} MiB/s): not measured`,
    };
  }

  private newTransfer(vm: SimVm, cmd: StepCommand): Transfer {
    const guest = this.guest(vm, cmd);
    const linkBytesPerSec = this.o.bandwidthMiBps * MiB;
    // the model switches over with room left for the saga's path from the pause to the resume (steps 5–7)
    const policy = modelPolicyFor({ ...cmd.policy, downtimeLimitMs: simModelDowntimeLimitMs(cmd.policy.downtimeLimitMs) }, guest.memoryBytes);
    const sim = new PrecopySimulation(
      {
        ...guest,
        bandwidthBytesPerSec: cappedBandwidthBytesPerSec(linkBytesPerSec, policy.bandwidthMiBps),
        switchoverBandwidthBytesPerSec: linkBytesPerSec,
        downtimeLimitMs: policy.downtimeLimitMs,
        maxPasses: this.o.maxPasses ?? DEFAULT_MAX_PASSES,
        passOverheadMs: this.o.passOverheadMs ?? DEFAULT_PASS_OVERHEAD_MS,
        deviceStateBytes: this.o.deviceStateBytes ?? DEFAULT_DEVICE_STATE_BYTES,
        switchoverFixedMs: this.o.switchoverFixedMs ?? DEFAULT_SWITCHOVER_FIXED_MS,
      },
      // the saga, not the model, decides when the guest pauses (steps 5 and 6)
      { startMs: 0, pauseBeforeSwitchover: true },
    );
    return { migrationId: cmd.migrationId, sim, policy, linkBytesPerSec, status: 'running', abort: new AbortController(), endWaiters: new Set() };
  }

  /**
   * Runs the model in scaled real time until pass 1 ends (step 3) or pre-copy stops (step 4), asking
   * the policy at every pass boundary and when a timeout falls due mid-pass (as simulateWithPolicy).
   * Throws a clear error when the policy or the driver gives up, or when the transfer is cancelled.
   */
  private async drive(vm: SimVm, t: Transfer, progress: ProgressSink, opts: { stopAfterFirstPass: boolean }): Promise<void> {
    const sim = t.sim;
    const vmId = vm.spec.id;
    for (;;) {
      this.throwIfStopped(vmId, t);
      if (sim.phase !== 'precopy') break;
      if (opts.stopAfterFirstPass && sim.history.length >= 1) return;

      const decision = decideConvergence(sim.history, t.policy, sim.nowMs);
      const events = applyDecision(sim, decision);
      this.note(t, events);
      if (decision.action === 'abort') throw this.fail(vmId, t, decision.code, decision.reason);
      if (sim.phase !== 'precopy') break;
      if (this.o.failFastWhenStalled !== false && stalledWithoutLever(sim.history, sim.params, t.policy, sim.throttlePct, sim.downtimeLimitMs)) {
        const reason = noLeverReason('the remaining cannot shrink below the downtime budget', t.policy, sim.throttlePct);
        sim.abort(`${ConvergenceFailureCode.NotConverging}: ${reason}`);
        throw this.fail(vmId, t, ConvergenceFailureCode.NotConverging, reason);
      }

      await this.advance(t, this.nextStopMs(t), progress);
      this.throwIfStopped(vmId, t);
      if (phaseOf(sim) === 'failed') {
        // the model ran out of passes (maxPasses): the only failure it reaches by itself
        throw this.fail(vmId, t, ConvergenceFailureCode.NotConverging, `no switchover after ${sim.history.length} passes, the model's maximum`);
      }
    }
    // pre-copy stopped: the switchover waits for steps 5 and 6
    if (sim.phase === 'pre-switchover') {
      t.status = 'ready';
      this.report(t, progress);
      return;
    }
    throw new FlexmigError(ErrorCode.Internal, `the model of VM ${vmId}'s transfer stopped in phase ${sim.phase}`);
  }

  /** The next moment the driver must look: the end of the pass in flight, or a timeout falling due before it. */
  private nextStopMs(t: Transfer): number {
    const sim = t.sim;
    const stops = [sim.nextBoundaryMs()!];
    const completion = completionTimeoutMs(t.policy);
    if (completion > sim.nowMs) stops.push(completion);
    if (sim.history.length > 0) {
      const progressDeadline = lastProgressMs(sim.history, t.policy.memoryBytes) + t.policy.progressTimeoutSec * 1000;
      if (progressDeadline > sim.nowMs) stops.push(progressDeadline);
    }
    return Math.min(...stops);
  }

  /**
   * Moves the model to `targetMs` (simulated), waiting `timeScale` real ms per simulated ms in ticks of
   * at most progressIntervalMs, reporting progress after each tick and at each pass end. The model
   * follows the real time that actually passed, so a late timer does not slow the simulation down.
   */
  private async advance(t: Transfer, targetMs: number, progress: ProgressSink): Promise<void> {
    const sim = t.sim;
    const scale = this.o.timeScale;
    if (scale === 0 || targetMs <= sim.nowMs) {
      this.note(t, sim.advanceTo(Math.max(targetMs, sim.nowMs)));
      this.report(t, progress);
      // yield, so that a cancel, the heartbeats and the other hosts of a fleet get their turn
      await this.clock.sleep(0, t.abort.signal);
      return;
    }
    while (sim.nowMs < targetMs) {
      const leftRealMs = (targetMs - sim.nowMs) * scale;
      const tickMs = Math.min(this.progressIntervalMs, leftRealMs);
      const before = this.clock.now();
      await this.clock.sleep(tickMs, t.abort.signal);
      if (t.abort.signal.aborted) return; // the caller throws
      const waitedMs = Math.max(tickMs, this.clock.now() - before);
      const events = sim.advanceTo(Math.min(targetMs, sim.nowMs + waitedMs / scale));
      this.note(t, events);
      this.report(t, progress);
    }
  }

  private note(t: Transfer, events: SimulationEvent[]): void {
    for (const e of events) if (e.type === 'switchover-started') t.mode = e.mode;
  }

  /** Progress is lossy: a report that cannot be sent never fails the transfer. */
  private report(t: Transfer, progress: ProgressSink): void {
    const p = t.sim.progress();
    try {
      progress({
        pass: p.pass,
        percent: Math.max(0, Math.min(100, p.percent)),
        totalBytes: t.sim.params.memoryBytes,
        transferredBytes: p.transferredBytes,
        remainingBytes: p.remainingBytes,
        dirtyRateBytesPerSec: p.dirtyRateBytesPerSec,
        bandwidthBytesPerSec: p.bandwidthBytesPerSec,
        expectedDowntimeMs: p.expectedDowntimeMs,
        throttlePct: p.throttlePct,
      });
    } catch {
      // dropped: the next report carries the same figures, updated
    }
  }

  private stats(t: Transfer): TransferStats {
    const p = t.sim.progress();
    return { passes: t.sim.history.length, bytesTransferred: p.transferredBytes, remainingBytes: p.remainingBytes, throttlePct: t.sim.throttlePct };
  }

  private fail(vmId: string, t: Transfer, code: Parameters<typeof convergenceFailure>[0]['code'], reason: string): FlexmigError {
    const sim = t.sim;
    const last = sim.history[sim.history.length - 1];
    t.status = 'failed';
    t.failure = convergenceFailure({
      vmId,
      migrationId: t.migrationId,
      code,
      reason,
      figures: { kind: 'model', params: sim.params, linkBytesPerSec: t.linkBytesPerSec },
      policy: t.policy,
      passes: sim.history.length,
      elapsedMs: sim.nowMs,
      remainingBytes: last?.remainingBytes ?? sim.params.memoryBytes,
      throttlePct: sim.throttlePct,
      downtimeLimitMs: sim.downtimeLimitMs,
    });
    wakeAll(t.endWaiters);
    return t.failure;
  }

  private throwIfStopped(vmId: string, t: Transfer): void {
    if (t.status === 'cancelled' || t.abort.signal.aborted) {
      throw transferCancelled(vmId, t.migrationId, this.closed ? 'the driver closed' : String(t.abort.signal.reason ?? 'cancelTransfer'));
    }
  }

  /** Ends a transfer: the model aborts (the guest keeps running on the source) and any wait wakes up. */
  private stop(t: Transfer, why: string): void {
    if (t.sim.phase === 'precopy' || t.sim.phase === 'pre-switchover') t.sim.abort(`cancelled: ${why}`);
    if (t.status === 'running' || t.status === 'ready') t.status = 'cancelled';
    if (!t.abort.signal.aborted) t.abort.abort(why);
    wakeAll(t.endWaiters);
  }
}

function wakeAll(waiters: Set<() => void>): void {
  const ws = [...waiters];
  waiters.clear();
  for (const w of ws) w();
}

/** The model's phase, read afresh (TypeScript would keep a narrowing across an await). */
const phaseOf = (sim: PrecopySimulation): SimulationPhase => sim.phase;

export function simHostname(hostId: string): string {
  return `${hostId}.sim.${hostname()}`;
}
