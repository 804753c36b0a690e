/**
 * DRIVER=qemu: real VMs under QEMU 7.2, migrated QEMU to QEMU over TCP, driven over QMP.
 * DESIGN.md "Hypervisor drivers"; reference/qemu-migration.md for the facts this relies on.
 *
 * This class is the steps; it composes the VM registry (vm-registry.ts: launch, attach, persist,
 * recover, destroy), the transfer monitor (transfer-monitor.ts: poll, watchdog, convergence) and the
 * address helpers (qemu-address.ts: where the stream goes).
 *
 * Steps: 2 target `-incoming defer -S` (and `-mem-prealloc` where the memory is free: incoming-prealloc.ts) +
 * capabilities + migrate-incoming; 3 source capabilities, parameters,
 * `migrate`, returns after the first pass; 4 follows query-migrate (events + ≤250 ms polling) with the
 * convergence policy and a stall watchdog, and QEMU's downtime-limit rescaled so that it switches over only
 * when what is left fits the policy's limit at the bandwidth the agent measured (switchover-decision.ts);
 * returns at `pre-switchover` (the guest is stopped there, and the monitor starts the final copy at once);
 * 5 confirms it (STOP time); 6 source waits for `completed`, 6 target `completed` + paused;
 * 7 `cont` on the target (RESUME time); 8 `quit` on the source.
 */
import { cpus, totalmem } from 'node:os';
import { Logger } from '@nestjs/common';
import { AgentVm, ErrorCode, FlexmigError, HostCpu, LINK_SINK_MAX_BYTES, StepCommand, TransferStats, VmSpec } from '@flexmig/contracts';
import { BYTES_PER_MIB } from '@flexmig/migration-model';
import { sleep } from '@flexmig/timing';
import { DirtyRateObservation, GuestCpuObservation, HypervisorDriver, ProgressSink, StreamEndWord } from '../driver';
import { DirtyRateSampler } from './dirty-rate-sampler';
import { modelPolicyFor, transferCancelled } from '../precopy-policy';
import { Accel, AccelSetting, CpuChoice, CpuProbe, chooseCpu, effectiveHostCpu, probeCpu, readCpuinfo } from './cpu-probe';
import { readFreshGuestCpuid } from './cpuid-record';
import { MemoryCheckResult, checkGuestMemory } from './memory-check';
import { MigrateInfo } from './migrate-info';
import { LinkProbeResult, removeStaleProbes, runLinkProbe } from './link-probe';
import { LinkSink, LinkSinkResult } from './link-sink';
import { hostPort, migrationPort, rangePortsFrom, sourceEndpoint, tcpUri } from './qemu-address';
import { MIGRATION_FD_NAME, openMigrationConnection } from './migration-connection';
import { QmpClient, QmpError } from './qmp-client';
import { QemuProcess, isOurQemu, tail } from './qemu-process';
import { checkTlsDir, confirmTls, useTls } from './tls';
import { QEMU_MIN_DOWNTIME_LIMIT_MS } from './switchover-decision';
import { SwitchoverRecord, Transfer, TransferMonitor } from './transfer-monitor';
import { readResidentGuestBytes } from './guest-residency';
import type { PreallocSetting } from './incoming-prealloc';
import { Vm, VmRegistry, VmState } from './vm-registry';
import { ensurePrivateDir } from '../../private-files';

/** "Uncapped": QEMU 7.2's default max-bandwidth is 128 MiB/s, so a policy without a cap sets this explicitly. */
export const UNCAPPED_BANDWIDTH_BYTES = 1024 * 1024 * 1024 * 1024; // 1 TiB/s

/** The probe QEMU's RAM (QEMU_LINK_PROBE_MIB): long enough to measure, short enough to ask on a prediction. */
export const DEFAULT_LINK_PROBE_MIB = 64;
/** How long a link sink waits for its one connection, and how long a connection may take to end. */
export const LINK_SINK_ACCEPT_MS = 10_000;
export const LINK_SINK_READ_MS = 60_000;
/** A probe gives up after this long (the stream cancelled, the probe QEMU killed). */
const LINK_PROBE_TIMEOUT_MS = 45_000;
/** Step 6 on the target asks QEMU again after this long without a MIGRATION event (one lost event's cost). */
const incomingRecheckMs = 100;
/** How long step 3 waits for a switchover QEMU's own test says comes at its next iteration (TransferMonitor.switchoverDue). */
const switchoverDueWaitMs = 100;
/** query-migrate's states of a stream that has not ended (`cancelling` ends as `cancelled`). */
const STREAM_UNDER_WAY = new Set(['setup', 'active', 'pre-switchover', 'device', 'cancelling', 'wait-unplug', 'postcopy-active', 'postcopy-paused', 'postcopy-recover']);

export interface QemuDriverOptions {
  binary: string;
  accel: AccelSetting;
  runDir: string;
  /** Host/IP the target's QEMU listens on for incoming migrations. */
  listenHost: string;
  /** Inclusive port range for incoming migrations (the same on every host). */
  /**
   * Fixed ports for incoming streams (firewalled networks): the port then derives from the migration id.
   * Unset: the kernel picks a free port, reported in the step-2 reply (no collisions).
   */
  portRange?: [number, number];
  /** Reported capacity (defaults: this machine's memory and CPUs). */
  memoryMiB?: number;
  vcpus?: number;
  /** QMP polling period while a migration runs (≤ 500 ms). */
  pollIntervalMs?: number;
  /** Fail a stream whose `transferred` does not move for this long (QEMU never notices a destination that stops reading). */
  stallTimeoutMs?: number;
  /** Auto-converge throttle steps handed to QEMU (defaults: QEMU's 20 / 10). */
  throttleInitialPct?: number;
  throttleIncrementPct?: number;
  /** Give up without a lever after this many passes in a row that did not converge (default 8). */
  notConvergingPasses?: number;
  /** vCPU spin-loop speed per accelerator, to turn a workload's dirty rate into a guest delay. */
  spinItersPerSec?: Partial<Record<Accel, number>>;
  /** /proc/cpuinfo text (tests). */
  cpuinfo?: string;
  /** The guest workload of VMs whose spec has none (inventory's VMs carry none): the same on every host. */
  defaultWorkload?: VmSpec['workload'];
  /** QEMU_TLS_DIR: migrate over TLS with the certificates there (tls.ts); unset: plain TCP. */
  tlsDir?: string;
  /** Period of the scheduled calc-dirty-rate sampling of every running VM (dirty-rate-sampler.ts); 0: on demand only. Default 5 min. */
  dirtyRateIntervalMs?: number;
  /** QEMU_LINK_PROBE_MIB: the RAM the link probe's QEMU migrates (default 64). */
  linkProbeMiB?: number;
  /** How long a link sink waits for its connection (ms; default LINK_SINK_ACCEPT_MS; tests). */
  linkSinkAcceptMs?: number;
  /** QEMU_PREALLOC_INCOMING (incoming-prealloc.ts; default auto). */
  preallocIncoming?: PreallocSetting;
  /** The memory this agent's QEMUs may still take, MiB (tests; default: that of this host and cgroup). */
  availableMemoryMiB?: () => number | undefined;
}

export class QemuDriver implements HypervisorDriver {
  readonly kind = 'qemu' as const;
  /** Step 4 ends at QEMU's `pre-switchover`, the guest stopped: step 5 is done with it (pauseSource records it). */
  readonly pausesAtSwitchover = true;
  /** The target's half of step 6 sends `cont` as soon as the incoming stream completed: step 7 is done with it. */
  readonly resumesWithTransferState = true;
  private probe?: Promise<CpuProbe>;
  private readonly monitor: TransferMonitor;
  private readonly registry: VmRegistry;
  /** Told when an incoming copy's state has loaded (onIncomingLoaded). */
  private readonly incomingLoaded: ((vmId: string, migrationId: string) => void)[] = [];
  private readonly dirtyRates: DirtyRateSampler;
  private readonly log = new Logger('qemu');
  /** Link sinks open on this host (target side), closed with the driver. */
  private readonly sinks = new Set<LinkSink>();
  /** One link probe at a time from this host: two at once would share the link and each measure a part. */
  private probing: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: QemuDriverOptions) {
    // 0700: the QMP sockets in it drive the guests; state files, logs and serial output name them
    ensurePrivateDir(o.runDir);
    if (o.tlsDir) checkTlsDir(o.tlsDir);
    else this.log.warn('QEMU_TLS_DIR is not set: migration streams of this host travel in cleartext');
    this.monitor = new TransferMonitor({
      pollMs: Math.min(500, Math.max(20, o.pollIntervalMs ?? 250)),
      ...(o.stallTimeoutMs !== undefined ? { stallTimeoutMs: o.stallTimeoutMs } : {}),
      ...(o.notConvergingPasses !== undefined ? { notConvergingPasses: o.notConvergingPasses } : {}),
      procOf: (vm) => this.registry.procOf(vm),
    });
    // the transfer monitor hears every QEMU event; an incoming copy's `completed` is told to the agent too
    this.registry = new VmRegistry(o, {
      onAttach: (vm, proc) => this.monitor.onAttach(vm, proc),
      onExit: (vm, end) => this.monitor.onExit(vm, end),
      onEvent: (vm, e) => {
        this.monitor.onEvent(vm, e);
        const migrationId = vm.state.migrationId;
        if (e.event === 'MIGRATION' && e.data?.status === 'completed' && vm.state.role === 'incoming' && migrationId) {
          for (const fn of this.incomingLoaded) fn(vm.state.vmId, migrationId);
        }
      },
    });
    this.registry.recover();
    removeStaleProbes(o.runDir);
    this.dirtyRates = new DirtyRateSampler({
      intervalMs: o.dirtyRateIntervalMs ?? 300_000,
      vmIds: () => this.registry.all().map((v) => v.state.vmId),
      vmOf: (id) => {
        const vm = this.registry.get(id);
        if (!vm || vm.dead) return undefined;
        const memoryBytes = vm.state.spec.memoryMiB * BYTES_PER_MIB;
        return {
          qmp: async () => (await this.registry.procOf(vm)).qmp,
          memoryBytes,
          sampleable: vm.running && !vm.transfer,
          residentBytes: () => this.residentOf(vm),
        };
      },
    });
  }

  // ---- host --------------------------------------------------------------------------------------------

  /** Starts QEMU once per accelerator (`-machine none`) to learn what it can run; memoized. */
  init(): Promise<CpuProbe> {
    this.probe ??= probeCpu(this.o.binary, this.o.accel, this.o.runDir);
    void this.registry.sandboxArgs(); // learnt at start too (beside the CPU probe), not at the first VM's launch
    return this.probe;
  }

  async hostCpu(): Promise<HostCpu> {
    const h = effectiveHostCpu(this.o.cpuinfo ?? readCpuinfo(), await this.init());
    return { vendor: h.vendor, modelName: `${h.modelName} (QEMU ${h.accelerators.join('+')})`, features: h.features };
  }

  capacity() {
    return { memoryMiB: this.o.memoryMiB ?? Math.floor(totalmem() / BYTES_PER_MIB), vcpus: this.o.vcpus ?? cpus().length };
  }

  listVms(): AgentVm[] {
    return this.registry.list();
  }

  /** Where a VM's files and QEMU are (tests, demo). */
  vmInfo(vmId: string): (VmState & { alive: boolean }) | undefined {
    return this.registry.info(vmId);
  }

  async startVm(spec: VmSpec): Promise<void> {
    const existing = this.registry.get(spec.id);
    if (existing && !existing.dead) return;
    const choice = this.chooseCpu(await this.init(), spec);
    await this.registry.launch(spec, choice, 'vm');
  }

  // ---- step 2 / target ------------------------------------------------------------------------------

  async prepareIncoming(cmd: StepCommand): Promise<{ incomingAddress: string }> {
    return this.prepareIncomingAt(cmd);
  }

  /** Step 2 with its answer: the address the target listens on (for StepReply.incomingAddress). */
  async prepareIncomingAt(cmd: StepCommand): Promise<{ incomingAddress: string }> {
    const existing = this.registry.get(cmd.vm.id);
    if (existing && !existing.dead && existing.state.role === 'incoming' && existing.state.migrationId === cmd.migrationId) {
      if (existing.state.incomingAddress) return { incomingAddress: existing.state.incomingAddress };
      // an earlier agent started it and died before it listened: no one was told where, so replace it
      await this.registry.destroy(existing);
    } else if (existing && !existing.dead) {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${cmd.vm.id} already exists on this host (${existing.state.role}${existing.state.migrationId ? `, migration ${existing.state.migrationId}` : ''})`);
    }
    // refused before anything starts when this host cannot run the baseline with enforce
    const choice = this.chooseCpu(await this.init(), cmd.vm);
    const vm = await this.registry.launch(cmd.vm, choice, 'incoming', cmd.migrationId);
    // with a fixed range: the port derived from the migration id first, then the range's next ones. A
    // range inside the kernel's ephemeral ports meets a port some outgoing connection holds (bench/qemu,
    // 49700-49799); the step-2 reply says which port listens, and the source streams there
    const range = this.o.portRange;
    const ports = range ? rangePortsFrom(range, migrationPort(cmd.migrationId, range) - range[0]) : [0];
    let port = ports[0]!;
    try {
      const qmp = vm.proc!.qmp;
      await qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'events', state: true },
          { capability: 'return-path', state: true },
          { capability: 'late-block-activate', state: true },
          { capability: 'postcopy-ram', state: cmd.policy.postCopy },
        ],
      });
      if (this.o.tlsDir) await qmp.execute('migrate-set-parameters', await useTls(qmp, this.o.tlsDir, 'server'));
      port = await this.listenOnFirstFree(qmp, ports);
      const info = await qmp.execute<MigrateInfo>('query-migrate');
      const sa = info['socket-address']?.find((a) => a.type === 'inet');
      const address = hostPort(this.o.listenHost, sa?.port ?? port);
      vm.state.incomingAddress = address;
      this.registry.persist(vm);
      return { incomingAddress: address };
    } catch (e) {
      await this.registry.destroy(vm);
      const msg = (e as Error).message;
      throw new FlexmigError(
        /in use/i.test(msg) ? ErrorCode.Conflict : ErrorCode.AgentFailed,
        `VM ${cmd.vm.id}: cannot listen for the incoming migration on ${tcpUri(this.o.listenHost, port)}${range ? ` (QEMU_MIGRATION_PORT_RANGE ${range.join('-')})` : ''}: ${msg}`,
      );
    }
  }

  /**
   * `migrate-incoming` on the first of `ports` that is free (QEMU 7.2 takes another `migrate-incoming`
   * after one that failed to bind). Returns the port it listens on; throws QEMU's error for anything but a
   * port in use, and a CONFLICT naming the range when every port of it is taken.
   */
  private async listenOnFirstFree(qmp: QmpClient, ports: readonly number[]): Promise<number> {
    for (const port of ports) {
      try {
        await qmp.execute('migrate-incoming', { uri: tcpUri(this.o.listenHost, port) });
        return port;
      } catch (e) {
        if (!(e instanceof QmpError && /in use/i.test(e.desc)) || ports.length === 1) throw e;
      }
    }
    throw new FlexmigError(
      ErrorCode.Conflict,
      `every port of the range (${ports.length}, from ${ports[0]}) is in use on ${this.o.listenHost}: widen QEMU_MIGRATION_PORT_RANGE or move it out of the kernel's ephemeral ports (net.ipv4.ip_local_port_range)`,
    );
  }

  async destroyIncoming(vmId: string): Promise<void> {
    const vm = this.registry.get(vmId);
    if (!vm) return;
    // a VM that ran here is never destroyed by a compensation, and never reported destroyed either: the saga
    // would resume the source next (participation.ts refuses first when the ledger or the run state knows)
    const refuse = (why: string) =>
      new FlexmigError(ErrorCode.Conflict, `VM ${vmId} ${why}: the copy is not destroyed; resolve the migration (flexmig resolve)`, { vmId }, false);
    if (vm.state.role !== 'incoming' || vm.state.resumedAt) throw refuse(`ran on this host (resumed ${vm.state.resumedAt ? `at ${vm.state.resumedAt}` : 'before'})`);
    // an agent that sent `cont` and died before it recorded the resume left a guest that runs with role
    // `incoming`: asked of QEMU itself, never guessed (the step's ledger refuses first when it knows; participation.ts)
    const status = vm.dead ? undefined : await this.statusUnlessEnded(vm);
    if (status?.running) throw refuse('already runs on this host (its QEMU is running)');
    await this.registry.destroy(vm);
  }

  /**
   * The VM's run state as its QEMU says, or undefined when that QEMU ended under the question (nothing runs).
   * An incoming QEMU exits by itself when its stream breaks ("load of migration failed"), so a compensation
   * that follows a cancel can ask it just as it goes: its socket closes under the command, or under the
   * connection. A QEMU that is still there and does not answer makes it throw: never destroyed blind (the
   * compensation is retried).
   */
  private async statusUnlessEnded(vm: Vm): Promise<{ running: boolean } | undefined> {
    try {
      const proc = await this.registry.procOf(vm);
      return await proc.qmp.execute<{ running: boolean }>('query-status');
    } catch (e) {
      for (let i = 0; i < 100 && !vm.dead && isOurQemu(vm.state.pid, vm.state.qmpSocket); i++) await sleep(20);
      if (vm.dead || !isOurQemu(vm.state.pid, vm.state.qmpSocket)) return undefined;
      throw e;
    }
  }

  onIncomingLoaded(fn: (vmId: string, migrationId: string) => void): void {
    this.incomingLoaded.push(fn);
  }

  async confirmIncoming(cmd: StepCommand): Promise<void> {
    const vm = this.registry.get(cmd.vm.id);
    // this migration resumed it already (an agent that died before its ledger recorded it): resumeTarget answers
    if (vm && !vm.dead && vm.state.resumedBy === cmd.migrationId) return;
    if (!vm || vm.dead || vm.state.role !== 'incoming' || vm.state.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `no incoming VM ${cmd.vm.id} for migration ${cmd.migrationId} on this host (step 2 first)`);
    }
    if (vm.state.resumedAt) return;
    const proc = await this.registry.procOf(vm);
    const deadline = Date.now() + 60_000;
    // the status the last MIGRATION event carried: a `completed` one is taken as it is, without asking again,
    // whether it came during this wait or before this step (an idle guest's final copy often ends before step 6
    // arrives: a query then cost the downtime a round trip to a QEMU busy loading, up to 9 ms measured)
    let announced: unknown = vm.incomingStatus;
    for (;;) {
      // this is downtime: woken by QEMU's MIGRATION event (capability `events`, set at step 2), not by a poll
      // interval; listening before asking, so that a change between the answer and the wait is not missed.
      // The wait is bounded: a lost event costs one interval, never the step.
      const changed = proc.qmp.waitEvent((e) => e.event === 'MIGRATION', incomingRecheckMs, 'a MIGRATION event').catch(() => undefined);
      let info: Pick<MigrateInfo, 'status' | 'error-desc'> = { status: 'completed' };
      if (announced !== 'completed') {
        try {
          info = await proc.qmp.execute<MigrateInfo>('query-migrate');
        } catch (e) {
          await sleep(100);
          throw new FlexmigError(ErrorCode.AgentFailed, `VM ${cmd.vm.id}: the incoming QEMU is gone (${(e as Error).message}); its log: ${tail(vm.state.logFile, 800) || '(empty)'}`);
        }
      }
      if (info.status === 'completed') {
        // loaded and paused (-S): step 7 sends only `cont`. The run state is the registry's, kept by QEMU's STOP
        // and RESUME events (and asked on attach), not a query inside the downtime. A guest already running
        // (an earlier agent sent `cont` and died) is not marked: resumeTarget asks QEMU and finds it running.
        if (!vm.running) vm.incomingLoaded = cmd.migrationId;
        return;
      }
      if (info.status === 'failed') {
        throw new FlexmigError(ErrorCode.AgentFailed, `VM ${cmd.vm.id}: loading the incoming state failed: ${info['error-desc'] ?? ''} ${tail(vm.state.logFile, 800)}`);
      }
      if (Date.now() > deadline) throw new FlexmigError(ErrorCode.Timeout, `VM ${cmd.vm.id}: the incoming migration is still ${info.status} after 60 s`);
      announced = (await changed)?.data?.status;
    }
  }

  async resumeTarget(vmId: string): Promise<Date> {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `no incoming VM ${vmId} on this host`);
    if (vm.state.resumedAt) return new Date(vm.state.resumedAt);
    const proc = await this.registry.procOf(vm);
    // step 6 here saw the state loaded (this is downtime: no second look); after an agent restart, ask QEMU
    if (vm.state.role === 'incoming' && vm.incomingLoaded !== vm.state.migrationId) {
      const info = await proc.qmp.execute<MigrateInfo>('query-migrate');
      if (info.status !== 'completed') throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} has not received its state yet (incoming migration ${info.status}; step 6 first)`);
      // an earlier agent sent `cont` and died before it recorded it: the guest runs already, and a second
      // `cont` would bring no RESUME to wait for (fault matrix: qemu:kill-target-agent@resume-target). The
      // time is when this agent found it running: later than the resume, so the downtime reads longer.
      const st = await proc.qmp.execute<{ running: boolean }>('query-status');
      if (st.running) return this.resumed(vm, new Date());
    }
    const resumed = proc.qmp.waitEvent((e) => e.event === 'RESUME', 10_000, 'RESUME after cont');
    await proc.qmp.execute('cont');
    return this.resumed(vm, (await resumed).at);
  }

  /** Records that the incoming VM runs (resumed at `at`): from now on it is this host's VM. */
  private resumed(vm: Vm, at: Date): Date {
    vm.running = true;
    vm.state.resumedAt = at.toISOString();
    vm.state.resumedBy = vm.state.migrationId;
    vm.state.role = 'vm';
    vm.state.migrationId = undefined;
    vm.state.incomingAddress = undefined;
    this.registry.persist(vm);
    return at;
  }

  // ---- steps 3 and 4 / source ------------------------------------------------------------------------

  async transferMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    let t = vm.transfer;
    if (t && t.migrationId === cmd.migrationId && t.status === 'running') {
      t.sink = progress; // a repeat: the stream already runs
    } else {
      if (t?.status === 'running') await this.cancelTransfer(cmd.vm.id);
      const proc = await this.registry.procOf(vm);
      await this.monitor.cancelOrphan(vm, proc); // a stream an earlier agent started, if one still runs
      const st = await proc.qmp.execute<{ status: string; running: boolean }>('query-status');
      if (!st.running) throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${cmd.vm.id} is ${st.status} on this host: only a running VM's memory is copied`);
      t = await this.startMigration(vm, proc, cmd, progress);
    }
    await this.monitor.until(t, () => t!.history.length >= 1 || this.monitor.atSwitchover(t!));
    // an idle guest's first pass leaves next to nothing, and QEMU stops it a millisecond or two after that pass
    // ends: that moment is waited for (bounded), so that step 3 ends at the switchover and steps 4 and 5 are done
    // with it, rather than a command of step 4 sent as the guest stops (migration-steps.service.ts)
    if (this.monitor.switchoverDue(t)) await this.monitor.reachesSwitchover(t, switchoverDueWaitMs);
    return this.monitor.stats(t);
  }

  heldAtSwitchover(vmId: string, migrationId: string): boolean {
    const t = this.registry.get(vmId)?.transfer;
    return t !== undefined && t.migrationId === migrationId && this.monitor.atSwitchover(t);
  }

  async syncMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} for migration ${cmd.migrationId} is under way (step 3 first)`);
    }
    t.sink = progress;
    await this.monitor.until(t, () => this.monitor.atSwitchover(t));
    this.monitor.report(t);
    return this.monitor.stats(t);
  }

  async cancelTransfer(vmId: string): Promise<void> {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) return;
    const t = vm.transfer;
    if (t && (t.status === 'running' || t.status === 'switching')) {
      this.monitor.end(vm, t, 'cancelled', transferCancelled(vmId, t.migrationId, 'cancelTransfer'), true);
    }
    await t?.settled;
    // no transfer followed here (the agent restarted): a stream that completed is undone too (before step 7)
    if (!t) await this.monitor.abortStream(vm, true);
    vm.state.migrationId = undefined;
    vm.state.sourcePausedAt = undefined;
    this.registry.persist(vm);
  }

  // ---- steps 5 and 6 / source -----------------------------------------------------------------------

  async pauseSource(vmId: string): Promise<Date> {
    const vm = this.source(vmId);
    const t = vm.transfer;
    if (!t || !this.monitor.atSwitchover(t)) {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} is not held at pre-switchover (transfer ${t?.status ?? 'none'}${t?.failure ? `: ${t.failure.message}` : ''}); step 4 first`);
    }
    // no QMP round trip here (this is downtime): the monitor saw pre-switchover and started the final copy
    const stoppedAt = t.stoppedAt ?? vm.lastStop ?? new Date();
    if (!vm.state.sourcePausedAt) {
      // on disk before the answer: a restarted agent then leaves this guest paused (VmObserver.onAttach)
      vm.state.sourcePausedAt = stoppedAt.toISOString();
      this.registry.persist(vm);
    }
    return stoppedAt;
  }

  /** Split-brain fence: QMP `stop`, the QEMU process and its state stay. */
  async pauseVm(vmId: string): Promise<void> {
    const vm = this.source(vmId);
    await (await this.registry.procOf(vm)).qmp.execute('stop');
    vm.running = false;
  }

  async resumeSource(vmId: string): Promise<void> {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host: nothing to resume`);
    const t = vm.transfer;
    if (t && t.status !== 'completed' && t.status !== 'failed' && t.status !== 'cancelled') {
      // no abort here: the stream is aborted below, even if it completed
      this.monitor.end(vm, t, 'cancelled', transferCancelled(vmId, t.migrationId, 'the VM resumed on the source'), false);
    }
    await t?.settled;
    await this.monitor.abortStream(vm, true);
    vm.state.migrationId = undefined;
    vm.state.sourcePausedAt = undefined;
    this.registry.persist(vm);
  }

  /**
   * How the outgoing stream of `migrationId` ended here (HypervisorDriver.streamEnd). The transfer this agent
   * follows says at once; after an agent restart, QEMU does: `completed` only with the guest in `postmigrate`
   * (a process that arrived here by an incoming migration also says `completed` of that one).
   */
  async streamEnd(vmId: string, migrationId: string, waitMs: number): Promise<StreamEndWord> {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) return { status: 'gone', detail: `VM ${vmId} has no QEMU process on this host` };
    const t = vm.transfer;
    if (t && t.migrationId === migrationId) {
      const end = await this.monitor.streamEnd(vm, t, waitMs);
      return t.residentBytes !== undefined ? { ...end, residentBytes: t.residentBytes } : end;
    }
    if (vm.state.migrationId !== migrationId) {
      return { status: 'failed', detail: `VM ${vmId} streams no migration ${migrationId} from this host${vm.state.migrationId ? ` (it streams ${vm.state.migrationId})` : ''}: its copy here runs or may run` };
    }
    let proc: QemuProcess;
    try {
      proc = await this.registry.procOf(vm);
    } catch (e) {
      if (vm.dead || !isOurQemu(vm.state.pid, vm.state.qmpSocket)) return { status: 'gone', detail: `VM ${vmId}'s QEMU process ended on this host` };
      throw e;
    }
    const deadline = Date.now() + waitMs;
    for (;;) {
      const changed = proc.qmp.waitEvent((e) => e.event === 'MIGRATION', Math.max(1, Math.min(incomingRecheckMs, deadline - Date.now())), 'a MIGRATION event').catch(() => undefined);
      const info = await proc.qmp.execute<MigrateInfo>('query-migrate');
      if (info.status === 'completed') {
        const st = await proc.qmp.execute<{ status: string; running: boolean }>('query-status');
        if (st.status === 'postmigrate') return { status: 'completed', detail: `the stream of VM ${vmId} completed; its copy here stays paused (postmigrate)` };
        return { status: 'failed', detail: `VM ${vmId} is ${st.status} on this host, not postmigrate: its copy here runs or may run` };
      }
      if (!STREAM_UNDER_WAY.has(info.status)) {
        return { status: 'failed', detail: `the stream of VM ${vmId} is ${info.status ?? 'none'}${info['error-desc'] ? `: ${info['error-desc']}` : ''}; QEMU runs the guest here, or will` };
      }
      if (Date.now() >= deadline) return { status: 'active', detail: `the stream of VM ${vmId} is ${info.status} (no transfer of this agent follows it: the agent restarted)` };
      await changed;
    }
  }

  /**
   * Step 6, source: the final copy started when the guest stopped at pre-switchover (TransferMonitor.switchOver);
   * this waits for its end and reports QEMU's figures.
   */
  async transferState(cmd: StepCommand): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} is under way`);
    if (t.finalStats) return t.finalStats;
    if (t.failure) {
      await t.settled;
      throw t.failure;
    }
    if (!t.switched) throw new FlexmigError(ErrorCode.Conflict, `the memory of VM ${cmd.vm.id} is not at pre-switchover (${t.status}); steps 4 and 5 first`);
    let info: MigrateInfo;
    try {
      info = await t.switched;
    } catch (e) {
      await t.settled;
      throw t.failure ?? e;
    }
    this.monitor.stop(t);
    // the throttle in effect at the switchover (QEMU clears it once completed)
    const throttlePct = Math.max(info['cpu-throttle-percentage'] ?? 0, t.last?.['cpu-throttle-percentage'] ?? 0);
    t.last = { ...info, 'cpu-throttle-percentage': throttlePct };
    t.finalStats = {
      passes: Math.max(1, (info.ram?.['dirty-sync-count'] ?? 1) - 1),
      bytesTransferred: info.ram?.transferred ?? t.transferred,
      remainingBytes: info.ram?.remaining ?? 0,
      ...(info.downtime !== undefined ? { downtimeMs: info.downtime } : {}),
      throttlePct,
    };
    if (t.switchover) {
      const s = t.switchover;
      this.log.log(`migration ${cmd.migrationId}: QEMU's downtime ${info.downtime ?? '?'} ms (${info.ram?.['downtime-bytes'] ?? '?'} bytes) against the ${Math.round(s.expectedDowntimeMs)} ms expected and the ${s.limitMs} ms limit`);
    }
    return t.finalStats;
  }

  /**
   * Step 6, target: the source's word on the guest's memory that held data. Kept for a copy whose memory was
   * touched ahead (its own resident memory is all of it), at most the guest's memory.
   */
  noteArrival(vmId: string, arrival: { residentBytes: number }): void {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead || !vm.state.preallocated) return;
    vm.state.residentBytesAtArrival = Math.min(arrival.residentBytes, vm.state.spec.memoryMiB * BYTES_PER_MIB);
    this.registry.persist(vm);
  }

  /**
   * How much of a VM's memory holds data (guest-residency.ts): its resident memory, or for a copy whose memory
   * was touched ahead (incoming-prealloc.ts), which is resident whole, what the source said when it arrived.
   */
  private residentOf(vm: Vm): Promise<number | undefined> {
    if (vm.state.preallocated) return Promise.resolve(vm.state.residentBytesAtArrival);
    return readResidentGuestBytes(vm.state.pid, vm.state.spec.memoryMiB * BYTES_PER_MIB);
  }

  /** What the agent expected at the switchover of a VM's last migration from this host (tests, bench). */
  switchoverOf(vmId: string): SwitchoverRecord | undefined {
    return this.registry.get(vmId)?.transfer?.switchover;
  }

  // ---- step 8 and the end -----------------------------------------------------------------------------

  async stopSource(vmId: string): Promise<void> {
    const vm = this.registry.get(vmId);
    if (!vm) return;
    if (vm.transfer) this.monitor.stop(vm.transfer);
    await this.registry.destroy(vm, true);
  }

  /** Runs the memory check on a VM of this host (the target, after step 7). */
  async checkMemory(vmId: string, timeoutMs?: number): Promise<MemoryCheckResult> {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host`);
    const proc = await this.registry.procOf(vm);
    return checkGuestMemory(proc.qmp, { memStart: vm.state.guest.memStart, memEnd: vm.state.guest.memEnd, dir: this.o.runDir, ...(timeoutMs ? { timeoutMs } : {}) });
  }

  /** The CPUID rows the guest executes after this call (a fresh sample: after a migration, one taken on this host). */
  async guestCpu(vmId: string, timeoutMs?: number): Promise<GuestCpuObservation> {
    const vm = this.source(vmId);
    const proc = await this.registry.procOf(vm);
    const s = await readFreshGuestCpuid(proc.qmp, { dir: this.o.runDir, ...(timeoutMs ? { timeoutMs } : {}) });
    return { source: 'guest', rows: s.rows, accel: vm.state.accel, sample: s.seq };
  }

  /** The VM's dirty rate and working set from QMP calc-dirty-rate (dirty-rate-sampler.ts). */
  dirtyRate(vmId: string, opts: { fresh?: boolean; maxAgeMs?: number } = {}): Promise<DirtyRateObservation> {
    return this.dirtyRates.get(vmId, opts);
  }

  // ---- link probe (docs/prediction.md) ----------------------------------------------------------------

  /**
   * Target: a one-shot TCP sink on the migration listen host (a free port of QEMU_MIGRATION_PORT_RANGE when
   * one is set) for one probe from `sourceHostId` (link-sink.ts). `result` settles when it closed (what reached it).
   */
  async openLinkSink(sourceHostId: string, maxBytes = LINK_SINK_MAX_BYTES): Promise<{ address: string; expiresAt: Date; result: Promise<LinkSinkResult> }> {
    const sink = await LinkSink.open({
      host: this.o.listenHost,
      ...(this.o.portRange ? { portRange: this.o.portRange } : {}),
      maxBytes,
      acceptWithinMs: this.o.linkSinkAcceptMs ?? LINK_SINK_ACCEPT_MS,
      readWithinMs: LINK_SINK_READ_MS,
      label: `a link probe from ${sourceHostId}`,
    });
    this.sinks.add(sink);
    void sink.result.then((r) => {
      this.sinks.delete(sink);
      if (r.end !== 'eof') this.log.warn(`link sink ${sink.address} for ${sourceHostId} ended ${r.end} after ${r.bytes} bytes${r.peer ? ` from ${r.peer}` : ''}${r.error ? `: ${r.error}` : ''}`);
    });
    return { address: sink.address, expiresAt: sink.expiresAt, result: sink.result };
  }

  /**
   * Source: a probe QEMU migrates QEMU_LINK_PROBE_MIB of random RAM into the target's link sink at
   * `targetAddress`; the bandwidth is QEMU's own (link-probe.ts). One probe at a time per host.
   */
  async probeLink(targetHostId: string, targetAddress: string): Promise<{ bandwidthBytesPerSec: number; origin: 'probe'; measuredAt: Date; detail: string }> {
    const run = this.probing.then(() => this.runProbe(targetHostId, targetAddress));
    this.probing = run.catch(() => undefined);
    const r = await run;
    const tls = this.o.tlsDir ? ' (plain TCP: the sink cannot speak TLS; this host migrates over TLS, whose cost is not in the figure)' : '';
    return { bandwidthBytesPerSec: r.bandwidthBytesPerSec, origin: 'probe', measuredAt: r.measuredAt, detail: `${r.detail}${tls}`.slice(0, 500) };
  }

  private async runProbe(targetHostId: string, targetAddress: string): Promise<LinkProbeResult> {
    const accels = (await this.init()).accels.map((a) => a.accel);
    return runLinkProbe({
      binary: this.o.binary,
      // no vCPU runs: TCG, which needs no /dev/kvm, unless this QEMU is built without it
      accel: accels.includes('tcg') ? 'tcg' : (accels[0] ?? 'tcg'),
      runDir: this.o.runDir,
      sandboxArgs: await this.registry.sandboxArgs(),
      sizeMiB: this.o.linkProbeMiB ?? DEFAULT_LINK_PROBE_MIB,
      maxBandwidthBytes: UNCAPPED_BANDWIDTH_BYTES,
      targetHostId,
      targetAddress,
      timeoutMs: LINK_PROBE_TIMEOUT_MS,
    });
  }

  /** Ends every QEMU of this driver and removes its files (tests; an agent's close() leaves VMs running). */
  async destroyAll(): Promise<void> {
    await Promise.all(this.registry.all().map((v) => this.registry.destroy(v, true)));
  }

  /** Closes the QMP connections; the VMs keep running and a restarted agent finds them again. */
  async close(): Promise<void> {
    this.dirtyRates.stop();
    for (const sink of this.sinks) sink.close();
    for (const vm of this.registry.all()) {
      const t = vm.transfer;
      if (t && (t.status === 'running' || t.status === 'switching')) {
        // nothing of this agent acts on the stream any more (no abort: the next agent settles it, onAttach)
        this.monitor.end(vm, t, 'cancelled', transferCancelled(vm.state.vmId, t.migrationId, 'the agent closed'), false);
      } else if (t) this.monitor.stop(t);
      vm.proc?.qmp.close();
      vm.proc = undefined;
    }
  }

  private chooseCpu(probe: CpuProbe, spec: VmSpec): CpuChoice {
    return chooseCpu(probe, spec.cpuBaseline, `VM ${spec.id} (${spec.name})`);
  }

  private source(vmId: string): Vm {
    const vm = this.registry.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    return vm;
  }

  // ---- internals: the migration stream ------------------------------------------------------------------

  private async startMigration(vm: Vm, proc: QemuProcess, cmd: StepCommand, progress: ProgressSink): Promise<Transfer> {
    const target = sourceEndpoint(cmd, this.o.portRange);
    const uri = tcpUri(target.host, target.port);
    const memoryBytes = cmd.vm.memoryMiB * BYTES_PER_MIB;
    const policy = modelPolicyFor(cmd.policy, memoryBytes);
    const qmp = proc.qmp;
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'events', state: true },
        { capability: 'return-path', state: true },
        { capability: 'pause-before-switchover', state: true },
        { capability: 'auto-converge', state: cmd.policy.autoConverge },
        { capability: 'postcopy-ram', state: cmd.policy.postCopy },
      ],
    });
    await qmp.execute('migrate-set-parameters', {
      // the smallest until the agent has measured the bandwidth: the monitor then rescales the policy's limit
      // (switchover-decision.ts), so that QEMU switches over only when what is left fits it
      'downtime-limit': QEMU_MIN_DOWNTIME_LIMIT_MS,
      'max-bandwidth': cmd.policy.bandwidthMiBps ? cmd.policy.bandwidthMiBps * BYTES_PER_MIB : UNCAPPED_BANDWIDTH_BYTES,
      'cpu-throttle-initial': this.o.throttleInitialPct ?? policy.throttleInitialPct,
      'cpu-throttle-increment': this.o.throttleIncrementPct ?? policy.throttleIncrementPct,
      'max-cpu-throttle': policy.maxThrottlePct,
      // the name the target's certificate is checked against: QEMU takes it from a tcp: URI, not from an fd:
      ...(this.o.tlsDir ? { ...(await useTls(qmp, this.o.tlsDir, 'client')), 'tls-hostname': target.host } : {}),
    });
    const tls = this.o.tlsDir ? await confirmTls(qmp, this.o.tlsDir, 'client') : 'in cleartext (QEMU_TLS_DIR is not set)';
    // before the transfer is recorded: a connection that cannot be handed over fails the step with nothing begun
    const connection = await openMigrationConnection(qmp, target);
    const start = `migration ${cmd.migrationId}: VM ${cmd.vm.id} → ${uri}`;
    if (connection.nodelay) this.log.log(`${start} (the agent's own connection, TCP_NODELAY) ${tls}`);
    else this.log.warn(`${start} (QEMU connects itself, with Nagle's algorithm on: the final copy may wait for a delayed acknowledgement, because ${connection.why}) ${tls}`);
    const t = this.monitor.begin(vm, { migrationId: cmd.migrationId, uri, wire: cmd.policy, policy, sink: progress });
    // told to the target when it asks how the stream ended (a copy whose memory it touches ahead keeps it)
    void this.residentOf(vm).then(
      (b) => (t.residentBytes = b),
      () => undefined,
    );
    vm.state.migrationId = cmd.migrationId;
    vm.state.sourcePausedAt = undefined;
    this.registry.persist(vm);
    try {
      await qmp.execute('migrate', { uri: connection.uri });
    } catch (e) {
      // a connection QEMU did not take would hold the target's incoming QEMU waiting for a stream
      if (connection.nodelay) await qmp.execute('closefd', { fdname: MIGRATION_FD_NAME }).catch(() => undefined);
      // nothing streams: a repeat of the step starts afresh instead of waiting on a transfer no one follows
      this.monitor.end(vm, t, 'failed', e instanceof FlexmigError ? e : new FlexmigError(ErrorCode.AgentFailed, `migrate to ${uri}: ${(e as Error).message}`), false);
      throw e;
    }
    this.monitor.follow(vm, t);
    return t;
  }
}
