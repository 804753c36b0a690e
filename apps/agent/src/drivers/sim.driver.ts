import { hostname } from 'node:os';
import { AgentVm, ErrorCode, FlexmigError, HostCpu, StepCommand, TransferStats, VmSpec } from '@flexmig/contracts';
import { HypervisorDriver, ProgressSink } from './driver';

const MiB = 1024 * 1024;
/** How often a running transfer reports progress (real time): "at least once a second". */
const progressIntervalMs = 250;
/** CPU and device state sent during the switchover, on top of the last dirty pages. */
const deviceStateBytes = 2 * MiB;

export interface SimDriverOptions {
  hostCpu: HostCpu;
  memoryMiB: number;
  vcpus: number;
  bandwidthMiBps: number;
  timeScale: number;
  defaultDirtyRateMiBps: number;
  defaultWorkingSetMiB: number;
}

interface SimVm {
  spec: VmSpec;
  state: AgentVm['state'];
  migrationId?: string;
  /** Pre-copy state on the source while a migration runs. */
  copy?: { dirtyBytes: number; passes: number; bytes: number; throttlePct: number; startedAt: number; bestRemaining: number; bestAt: number };
  aborted?: boolean;
}

/**
 * A simulated hypervisor: VMs are records, and a migration's memory copy is pre-copy modelled pass by
 * pass in scaled time (memory size, dirty rate, working set, link bandwidth, downtime limit), so a bigger
 * VM takes longer to move and a busy one needs more passes.
 */
export class SimDriver implements HypervisorDriver {
  readonly kind = 'sim' as const;
  private readonly vms = new Map<string, SimVm>();

  constructor(private readonly o: SimDriverOptions) {}

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
    this.vms.set(cmd.vm.id, { spec: cmd.vm, state: 'incoming', migrationId: cmd.migrationId });
  }

  async destroyIncoming(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (vm && vm.state !== 'running') this.vms.delete(vmId);
  }

  private source(vmId: string, migrationId: string): SimVm {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    vm.migrationId = migrationId;
    return vm;
  }

  private bandwidth(cmd: StepCommand): number {
    const capped = cmd.policy.bandwidthMiBps ? Math.min(cmd.policy.bandwidthMiBps, this.o.bandwidthMiBps) : this.o.bandwidthMiBps;
    return capped * MiB;
  }

  private guest(vm: SimVm) {
    const dirtyRate = (vm.spec.workload?.dirtyRateMiBps ?? this.o.defaultDirtyRateMiBps) * MiB;
    const workingSet = Math.min(vm.spec.memoryMiB, vm.spec.workload?.workingSetMiB ?? this.o.defaultWorkingSetMiB) * MiB;
    return { dirtyRate, workingSet };
  }

  /** Sends `bytes` at `bandwidth` in scaled time, reporting progress; returns the simulated seconds. */
  private async send(vm: SimVm, bytes: number, bandwidth: number, report: (sentSoFar: number) => void): Promise<number> {
    const seconds = bytes / bandwidth;
    const realMs = seconds * 1000 * this.o.timeScale;
    const started = Date.now();
    while (Date.now() - started < realMs) {
      if (vm.aborted) throw new FlexmigError(ErrorCode.Conflict, 'the transfer was cancelled');
      report(bytes * Math.min(1, (Date.now() - started) / realMs));
      await sleep(Math.min(progressIntervalMs, realMs - (Date.now() - started)));
    }
    if (vm.aborted) throw new FlexmigError(ErrorCode.Conflict, 'the transfer was cancelled');
    report(bytes);
    return seconds;
  }

  async transferMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    vm.aborted = false;
    const total = vm.spec.memoryMiB * MiB;
    const bw = this.bandwidth(cmd);
    const { dirtyRate, workingSet } = this.guest(vm);
    const seconds = await this.send(vm, total, bw, (sent) =>
      progress({
        pass: 1,
        percent: (100 * sent) / total,
        totalBytes: total,
        transferredBytes: sent,
        remainingBytes: total - sent,
        dirtyRateBytesPerSec: dirtyRate,
        bandwidthBytesPerSec: bw,
        expectedDowntimeMs: ((total - sent) / bw) * 1000,
        throttlePct: 0,
      }),
    );
    const dirtyBytes = Math.min(workingSet, dirtyRate * seconds);
    vm.copy = { dirtyBytes, passes: 1, bytes: total, throttlePct: 0, startedAt: Date.now(), bestRemaining: dirtyBytes, bestAt: Date.now() };
    return { passes: 1, bytesTransferred: total, remainingBytes: dirtyBytes, throttlePct: 0 };
  }

  async syncMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    const copy = vm.copy;
    if (!copy) throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} is under way (step 3 first)`);
    const bw = this.bandwidth(cmd);
    const { dirtyRate, workingSet } = this.guest(vm);
    const total = vm.spec.memoryMiB * MiB;
    const budgetBytes = (cmd.policy.downtimeLimitMs / 1000) * bw;
    const completionDeadline = copy.startedAt + cmd.policy.completionTimeoutPerGiBSec * 1000 * Math.max(1, total / (1024 * MiB)) * Math.max(this.o.timeScale, 0.001);
    while (copy.dirtyBytes > budgetBytes) {
      const effectiveDirtyRate = dirtyRate * (1 - copy.throttlePct / 100);
      const seconds = await this.send(vm, copy.dirtyBytes, bw, (sent) =>
        progress({
          pass: copy.passes + 1,
          percent: Math.min(99.9, (100 * (copy.bytes + sent)) / (copy.bytes + copy.dirtyBytes)),
          totalBytes: total,
          transferredBytes: copy.bytes + sent,
          remainingBytes: copy.dirtyBytes - sent,
          dirtyRateBytesPerSec: effectiveDirtyRate,
          bandwidthBytesPerSec: bw,
          expectedDowntimeMs: ((copy.dirtyBytes - sent) / bw) * 1000,
          throttlePct: copy.throttlePct,
        }),
      );
      copy.bytes += copy.dirtyBytes;
      copy.passes += 1;
      const next = Math.min(workingSet, effectiveDirtyRate * seconds);
      const shrinking = next < copy.dirtyBytes * 0.95;
      copy.dirtyBytes = next;
      if (next < copy.bestRemaining) {
        copy.bestRemaining = next;
        copy.bestAt = Date.now();
      }
      if (!shrinking && next > budgetBytes) {
        if (cmd.policy.autoConverge && copy.throttlePct < 99) {
          // QEMU's auto-converge: start at 20 %, add 10 % each pass that does not converge, up to 99 %
          copy.throttlePct = copy.throttlePct === 0 ? 20 : Math.min(99, copy.throttlePct + 10);
        } else {
          throw new FlexmigError(
            ErrorCode.Conflict,
            `VM ${cmd.vm.id} does not converge: it dirties ${(effectiveDirtyRate / MiB).toFixed(0)} MiB/s against a ${(bw / MiB).toFixed(0)} MiB/s link` +
              (cmd.policy.autoConverge ? ' even at 99 % CPU throttle' : ' and auto-converge is not allowed by the policy') +
              '; allow auto-converge or post-copy, raise the downtime limit or the bandwidth cap',
            { passes: copy.passes, remainingBytes: next, code: 'NOT_CONVERGING' },
          );
        }
      }
      if (Date.now() > completionDeadline) {
        throw new FlexmigError(ErrorCode.Timeout, `memory copy of VM ${cmd.vm.id} exceeded its completion timeout (${cmd.policy.completionTimeoutPerGiBSec} s per GiB)`, {
          code: 'COMPLETION_TIMEOUT',
        });
      }
    }
    return { passes: copy.passes, bytesTransferred: copy.bytes, remainingBytes: copy.dirtyBytes, throttlePct: copy.throttlePct };
  }

  async cancelTransfer(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return;
    vm.aborted = true;
    vm.copy = undefined;
    vm.migrationId = undefined;
    if (vm.state === 'paused') vm.state = 'running';
  }

  async pauseSource(vmId: string): Promise<Date> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    vm.state = 'paused';
    return new Date();
  }

  async resumeSource(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host: nothing to resume`);
    vm.state = 'running';
    vm.copy = undefined;
    vm.migrationId = undefined;
  }

  async transferState(cmd: StepCommand): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id, cmd.migrationId);
    const copy = vm.copy;
    if (!copy) throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} is under way`);
    if (vm.state !== 'paused') throw new FlexmigError(ErrorCode.Conflict, `VM ${cmd.vm.id} must be paused before its state is sent (step 5)`);
    const bytes = copy.dirtyBytes + deviceStateBytes;
    const seconds = await this.send(vm, bytes, this.bandwidth(cmd), () => undefined);
    copy.bytes += bytes;
    copy.dirtyBytes = 0;
    return { passes: copy.passes + 1, bytesTransferred: copy.bytes, remainingBytes: 0, downtimeMs: seconds * 1000, throttlePct: copy.throttlePct };
  }

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
    this.vms.delete(vmId);
  }

  async close(): Promise<void> {
    for (const vm of this.vms.values()) vm.aborted = true;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export function simHostname(hostId: string): string {
  return `${hostId}.sim.${hostname()}`;
}
