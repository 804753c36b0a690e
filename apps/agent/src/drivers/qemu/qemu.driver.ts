/**
 * DRIVER=qemu: real VMs under QEMU 7.2, migrated QEMU to QEMU over TCP, driven over QMP.
 * DESIGN.md "Hypervisor drivers"; reference/qemu-migration.md for the facts this relies on.
 *
 * A VM is one QEMU process (`-cpu <baseline>,enforce`, pinned machine type, no disk of its own: it boots
 * the workload image built from guest/workload.S, identical bytes on every host). Per VM the run dir
 * holds `<id>.json` (state, so a restarted agent finds its QEMUs), `<id>.qmp`, `<id>.log`, `<id>.serial`.
 *
 * Addresses: the target listens on `tcp:<listenHost>:0` (the kernel picks a free port, so two migrations
 * never collide), reads the real port back and returns it from step 2 (StepReply.incomingAddress); the
 * scheduler hands it to the source's commands. With a fixed QEMU_MIGRATION_PORT_RANGE (firewalls) the
 * port is portRange.start + FNV-1a(migration id) mod the range size instead, which the source can compute.
 *
 * Steps: 2 target `-incoming defer -S` + capabilities + migrate-incoming; 3 source capabilities, parameters,
 * `migrate`, returns after the first pass; 4 follows query-migrate (events + ≤250 ms polling) with the
 * convergence policy and a stall watchdog, returns at `pre-switchover` (the guest is stopped there);
 * 5 confirms it (STOP time); 6 source `migrate-continue` + `completed`, 6 target `completed` + paused;
 * 7 `cont` on the target (RESUME time); 8 `quit` on the source.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { z } from 'zod';
import { AgentVm, ErrorCode, FlexmigError, HostCpu, MigrationPolicy as WirePolicy, StepCommand, TransferStats, UuidSchema, VmSpec, VmSpecSchema } from '@flexmig/contracts';
import { BYTES_PER_MIB, type MigrationPolicy as ModelPolicy, type PassSample, decideConvergence, trailingNonConvergingPasses } from '@flexmig/migration-model';
import { sleep } from '@flexmig/timing';
import { HypervisorDriver, ProgressSink } from '../driver';
import { ConvergenceFailureCode, modelPolicyFor, transferCancelled } from '../precopy-policy';
import { Accel, AccelSetting, CpuChoice, CpuProbe, chooseCpu, effectiveHostCpu, probeCpu, readCpuinfo } from './cpu-probe';
import { DEFAULT_SPIN_ITERS_PER_SEC, buildGuestImage, guestParamsFor } from './guest/build-guest';
import { MemoryCheckResult, checkGuestMemory } from './memory-check';
import { QemuProcess, isOurQemu, tail, waitAtMost } from './qemu-process';
import { QmpEvent } from './qmp-client';
import { SANDBOX_ARGS, probeSandbox } from './sandbox';
import { checkTlsDir, useTls } from './tls';
import { ensurePrivateDir, readJsonFile, writePrivateFileAtomic } from '../../private-files';
import { addressHost } from '../../address';

export const MACHINE_TYPE = 'pc-i440fx-7.2';
/** "Uncapped": QEMU 7.2's default max-bandwidth is 128 MiB/s, so a policy without a cap sets this explicitly. */
export const UNCAPPED_BANDWIDTH_BYTES = 1024 * 1024 * 1024 * 1024; // 1 TiB/s

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
}

/** A VM's state file (`<runDir>/<id>.json`), validated when a restarted agent reads it back. */
const VmStateSchema = z.object({
  vmId: UuidSchema,
  spec: VmSpecSchema,
  /** 'incoming' until step 7 resumed it; then, and for started VMs, 'vm'. */
  role: z.enum(['vm', 'incoming']),
  migrationId: UuidSchema.optional(),
  accel: z.enum(['kvm', 'tcg']),
  cpu: z.string().min(1),
  guest: z.object({ memStart: z.number().int().min(0), memEnd: z.number().int().min(0), markEvery: z.number().int().min(0), delay: z.number().min(0) }),
  image: z.string().min(1),
  pid: z.number().int().positive(),
  qmpSocket: z.string().min(1),
  logFile: z.string().min(1),
  serialFile: z.string().min(1),
  incomingAddress: z.string().optional(),
  startedAt: z.string(),
  resumedAt: z.string().optional(),
});
type VmState = z.infer<typeof VmStateSchema>;

type TransferStatus = 'running' | 'ready' | 'switching' | 'completed' | 'failed' | 'cancelled';

interface MigrateInfo {
  status: string;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'socket-address'?: Array<{ type: string; host?: string; port?: string }>;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    'dirty-pages-rate': number;
    mbps: number;
    'dirty-sync-count': number;
    'page-size': number;
  };
}

interface Transfer {
  migrationId: string;
  uri: string;
  wire: WirePolicy;
  policy: ModelPolicy;
  startedAt: number;
  status: TransferStatus;
  last?: MigrateInfo;
  history: PassSample[];
  syncCount: number;
  syncAt: number;
  syncTransferred: number;
  transferred: number;
  transferredAt: number;
  downtimeLimitMs: number;
  stoppedAt?: Date;
  failure?: FlexmigError;
  sink?: ProgressSink;
  timer?: NodeJS.Timeout;
  polling: boolean;
  pollAgain: boolean;
  waiters: Set<() => void>;
  finalStats?: TransferStats;
  /** Resolves when a failure's clean-up (cancel, guest running on the source) is done. */
  settled?: Promise<void>;
  postcopy: boolean;
}

interface Vm {
  state: VmState;
  proc?: QemuProcess;
  attaching?: Promise<QemuProcess>;
  running: boolean;
  dead?: boolean;
  transfer?: Transfer;
  lastStop?: Date;
  lastResume?: Date;
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The incoming port of a migration: both agents compute the same one. */
export function migrationPort(migrationId: string, [lo, hi]: [number, number]): number {
  return lo + (fnv1a(migrationId) % (hi - lo + 1));
}

const tcpUri = (host: string, port: number | string) => `tcp:${host.includes(':') ? `[${host}]` : host}:${port}`;

export class QemuDriver implements HypervisorDriver {
  readonly kind = 'qemu' as const;
  private readonly vms = new Map<string, Vm>();
  private probe?: Promise<CpuProbe>;
  private sandbox?: Promise<readonly string[]>;
  private readonly pollMs: number;
  private readonly log = new Logger('qemu');

  constructor(private readonly o: QemuDriverOptions) {
    // 0700: the QMP sockets in it drive the guests; state files, logs and serial output name them
    ensurePrivateDir(o.runDir);
    if (o.tlsDir) checkTlsDir(o.tlsDir);
    else this.log.warn('QEMU_TLS_DIR is not set: migration streams of this host travel in cleartext');
    this.pollMs = Math.min(500, Math.max(20, o.pollIntervalMs ?? 250));
    this.recover();
  }

  // ---- host --------------------------------------------------------------------------------------------

  /** Starts QEMU once per accelerator (`-machine none`) to learn what it can run; memoized. */
  init(): Promise<CpuProbe> {
    this.probe ??= probeCpu(this.o.binary, this.o.accel, this.o.runDir);
    void this.sandboxArgs(); // learnt at start too (beside the CPU probe), not at the first VM's launch
    return this.probe;
  }

  /** `-sandbox …` when this QEMU has seccomp (asked once), else nothing, said once in the log. */
  private sandboxArgs(): Promise<readonly string[]> {
    this.sandbox ??= probeSandbox(this.o.binary, this.o.runDir).then((s) => {
      if (s.on) return SANDBOX_ARGS;
      this.log.warn(`${this.o.binary} does not start with ${SANDBOX_ARGS.join(' ')} (${s.reason}): its VMs run WITHOUT the seccomp sandbox (QEMU built without seccomp?)`);
      return [];
    });
    return this.sandbox;
  }

  async hostCpu(): Promise<HostCpu> {
    const h = effectiveHostCpu(this.o.cpuinfo ?? readCpuinfo(), await this.init());
    return { vendor: h.vendor, modelName: `${h.modelName} (QEMU ${h.accelerators.join('+')})`, features: h.features };
  }

  capacity() {
    return { memoryMiB: this.o.memoryMiB ?? Math.floor(totalmem() / BYTES_PER_MIB), vcpus: this.o.vcpus ?? cpus().length };
  }

  listVms(): AgentVm[] {
    return [...this.vms.values()].map((v) => {
      const s = v.state;
      const state: AgentVm['state'] = v.dead ? 'stopped' : s.role === 'incoming' ? (v.running ? 'running' : s.resumedAt ? 'running' : 'incoming') : v.running ? 'running' : 'paused';
      return { vmId: s.vmId, state, memoryMiB: s.spec.memoryMiB, ...(s.migrationId ? { migrationId: s.migrationId } : {}) };
    });
  }

  /** Where a VM's files and QEMU are (tests, demo). */
  vmInfo(vmId: string): (VmState & { alive: boolean }) | undefined {
    const v = this.vms.get(vmId);
    return v && { ...v.state, alive: !v.dead && isOurQemu(v.state.pid, v.state.qmpSocket) };
  }

  async startVm(spec: VmSpec): Promise<void> {
    const existing = this.vms.get(spec.id);
    if (existing && !existing.dead) return;
    const choice = this.chooseCpu(await this.init(), spec);
    await this.launch(spec, choice, 'vm');
  }

  // ---- step 2 / target ------------------------------------------------------------------------------

  async prepareIncoming(cmd: StepCommand): Promise<{ incomingAddress: string }> {
    return this.prepareIncomingAt(cmd);
  }

  /** Step 2 with its answer: the address the target listens on (for StepReply.incomingAddress). */
  async prepareIncomingAt(cmd: StepCommand): Promise<{ incomingAddress: string }> {
    const existing = this.vms.get(cmd.vm.id);
    if (existing && !existing.dead) {
      if (existing.state.role === 'incoming' && existing.state.migrationId === cmd.migrationId && existing.state.incomingAddress) {
        return { incomingAddress: existing.state.incomingAddress };
      }
      throw new FlexmigError(ErrorCode.Conflict, `VM ${cmd.vm.id} already exists on this host (${existing.state.role}${existing.state.migrationId ? `, migration ${existing.state.migrationId}` : ''})`);
    }
    // refused before anything starts when this host cannot run the baseline with enforce
    const choice = this.chooseCpu(await this.init(), cmd.vm);
    const vm = await this.launch(cmd.vm, choice, 'incoming', cmd.migrationId);
    const port = this.o.portRange ? migrationPort(cmd.migrationId, this.o.portRange) : 0;
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
      await qmp.execute('migrate-incoming', { uri: tcpUri(this.o.listenHost, port) });
      const info = await qmp.execute<MigrateInfo>('query-migrate');
      const sa = info['socket-address']?.find((a) => a.type === 'inet');
      const address = `${this.o.listenHost.includes(':') ? `[${this.o.listenHost}]` : this.o.listenHost}:${sa?.port ?? port}`;
      vm.state.incomingAddress = address;
      this.persist(vm);
      return { incomingAddress: address };
    } catch (e) {
      await this.destroy(vm);
      const msg = (e as Error).message;
      throw new FlexmigError(
        /in use/i.test(msg) ? ErrorCode.Conflict : ErrorCode.AgentFailed,
        `VM ${cmd.vm.id}: cannot listen for the incoming migration on ${tcpUri(this.o.listenHost, port)} ${this.o.portRange ? ` (port from migration id in ${this.o.portRange.join('-')})` : ''}: ${msg}`,
      );
    }
  }

  async destroyIncoming(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return;
    if (vm.state.role !== 'incoming' || vm.state.resumedAt) return; // a VM that runs here is never destroyed by a compensation
    await this.destroy(vm);
  }

  async confirmIncoming(cmd: StepCommand): Promise<void> {
    const vm = this.vms.get(cmd.vm.id);
    if (!vm || vm.dead || vm.state.role !== 'incoming' || vm.state.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `no incoming VM ${cmd.vm.id} for migration ${cmd.migrationId} on this host (step 2 first)`);
    }
    if (vm.state.resumedAt) return;
    const proc = await this.procOf(vm);
    const deadline = Date.now() + 60_000;
    for (;;) {
      let info: MigrateInfo;
      let status: { status: string; running: boolean };
      try {
        info = await proc.qmp.execute<MigrateInfo>('query-migrate');
        status = await proc.qmp.execute<{ status: string; running: boolean }>('query-status');
      } catch (e) {
        await sleep(100);
        throw new FlexmigError(ErrorCode.AgentFailed, `VM ${cmd.vm.id}: the incoming QEMU is gone (${(e as Error).message}); its log: ${tail(vm.state.logFile, 800) || '(empty)'}`);
      }
      if (info.status === 'completed' && !status.running) return;
      if (info.status === 'failed') {
        throw new FlexmigError(ErrorCode.AgentFailed, `VM ${cmd.vm.id}: loading the incoming state failed: ${info['error-desc'] ?? ''} ${tail(vm.state.logFile, 800)}`);
      }
      if (Date.now() > deadline) throw new FlexmigError(ErrorCode.Timeout, `VM ${cmd.vm.id}: the incoming migration is still ${info.status} after 60 s`);
      await sleep(10);
    }
  }

  async resumeTarget(vmId: string): Promise<Date> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `no incoming VM ${vmId} on this host`);
    if (vm.state.resumedAt) return new Date(vm.state.resumedAt);
    const proc = await this.procOf(vm);
    const info = await proc.qmp.execute<MigrateInfo>('query-migrate');
    if (vm.state.role === 'incoming' && info.status !== 'completed') {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} has not received its state yet (incoming migration ${info.status}; step 6 first)`);
    }
    const resumed = proc.qmp.waitEvent((e) => e.event === 'RESUME', 10_000, 'RESUME after cont');
    await proc.qmp.execute('cont');
    const at = (await resumed).at;
    vm.running = true;
    vm.state.resumedAt = at.toISOString();
    vm.state.role = 'vm';
    vm.state.migrationId = undefined;
    vm.state.incomingAddress = undefined;
    this.persist(vm);
    return at;
  }

  // ---- steps 3 and 4 / source ------------------------------------------------------------------------

  async transferMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    let t = vm.transfer;
    if (t && t.migrationId === cmd.migrationId && (t.status === 'running' || t.status === 'ready')) {
      t.sink = progress; // a repeat: the stream already runs
    } else {
      if (t && (t.status === 'running' || t.status === 'ready')) await this.cancelTransfer(cmd.vm.id);
      const proc = await this.procOf(vm);
      const st = await proc.qmp.execute<{ status: string; running: boolean }>('query-status');
      if (!st.running) throw new FlexmigError(ErrorCode.VmNotRunning, `VM ${cmd.vm.id} is ${st.status} on this host: only a running VM's memory is copied`);
      t = await this.startMigration(vm, proc, cmd, progress);
    }
    await this.until(vm, t, () => t!.history.length >= 1 || t!.status === 'ready');
    return this.stats(t);
  }

  async syncMemory(cmd: StepCommand, progress: ProgressSink): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) {
      throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} for migration ${cmd.migrationId} is under way (step 3 first)`);
    }
    t.sink = progress;
    await this.until(vm, t, () => t.status === 'ready');
    this.report(t);
    return this.stats(t);
  }

  async cancelTransfer(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.dead) return;
    const t = vm.transfer;
    if (t && (t.status === 'running' || t.status === 'ready' || t.status === 'switching')) {
      t.status = 'cancelled';
      t.failure = transferCancelled(vmId, t.migrationId, 'cancelTransfer');
      this.stopMonitor(t);
      t.settled = this.abortStream(vm);
      this.wake(t);
    }
    await t?.settled;
    if (!t) await this.abortStream(vm);
    vm.state.migrationId = undefined;
    this.persist(vm);
  }

  // ---- steps 5 and 6 / source -----------------------------------------------------------------------

  async pauseSource(vmId: string): Promise<Date> {
    const vm = this.source(vmId);
    const t = vm.transfer;
    if (!t || (t.status !== 'ready' && t.status !== 'switching' && t.status !== 'completed')) {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} is not held at pre-switchover (transfer ${t?.status ?? 'none'}${t?.failure ? `: ${t.failure.message}` : ''}); step 4 first`);
    }
    if (t.status === 'ready') {
      const info = await (await this.procOf(vm)).qmp.execute<MigrateInfo>('query-migrate');
      if (info.status !== 'pre-switchover') throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId}: the migration is ${info.status}, not pre-switchover`);
    }
    return t.stoppedAt ?? vm.lastStop ?? new Date();
  }

  /** Split-brain fence: QMP `stop`, the QEMU process and its state stay. */
  async pauseVm(vmId: string): Promise<void> {
    const vm = this.source(vmId);
    await (await this.procOf(vm)).qmp.execute('stop');
    vm.running = false;
  }

  async resumeSource(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host: nothing to resume`);
    const t = vm.transfer;
    if (t && t.status !== 'completed' && t.status !== 'failed' && t.status !== 'cancelled') {
      t.status = 'cancelled';
      t.failure = transferCancelled(vmId, t.migrationId, 'the VM resumed on the source');
      this.stopMonitor(t);
      this.wake(t);
    }
    await t?.settled;
    await this.abortStream(vm, true);
    vm.state.migrationId = undefined;
    this.persist(vm);
  }

  async transferState(cmd: StepCommand): Promise<TransferStats> {
    const vm = this.source(cmd.vm.id);
    const t = vm.transfer;
    if (!t || t.migrationId !== cmd.migrationId) throw new FlexmigError(ErrorCode.Conflict, `no memory transfer of VM ${cmd.vm.id} is under way`);
    if (t.finalStats) return t.finalStats;
    if (t.failure) throw t.failure;
    if (t.status !== 'ready') throw new FlexmigError(ErrorCode.Conflict, `the memory of VM ${cmd.vm.id} is not at pre-switchover (${t.status}); steps 4 and 5 first`);
    const proc = await this.procOf(vm);
    t.status = 'switching';
    // The MIGRATION event is the fast path (this wait is guest downtime); a poll every 100 ms catches a lost
    // one. The event may arrive while a query-migrate is on its way: it is remembered, never missed.
    let finalSeen = false;
    let wakeUp: () => void = () => undefined;
    const onEvent = (e: QmpEvent) => {
      if (e.event === 'MIGRATION' && FINAL.has(String(e.data?.status))) {
        finalSeen = true;
        wakeUp();
      }
    };
    proc.qmp.on('event', onEvent);
    let info: MigrateInfo;
    try {
      await proc.qmp.execute('migrate-continue', { state: 'pre-switchover' });
      for (;;) {
        info = await proc.qmp.execute<MigrateInfo>('query-migrate');
        if (FINAL.has(info.status)) break;
        if (!finalSeen) await waitAtMost(new Promise<void>((r) => (wakeUp = r)), 100);
        finalSeen = false;
      }
    } finally {
      proc.qmp.off('event', onEvent);
    }
    if (info.status !== 'completed') {
      const err = new FlexmigError(
        ErrorCode.AgentFailed,
        `the switchover of VM ${cmd.vm.id} (migration ${cmd.migrationId}) ${info.status}: ${info['error-desc'] || 'the target did not load the state (its QEMU log has the reason)'}; the VM keeps running on the source`,
      );
      t.status = 'failed';
      t.failure = err;
      this.stopMonitor(t);
      t.settled = this.abortStream(vm);
      await t.settled;
      throw err;
    }
    // QEMU 7.2 sets `completed` before total-time/downtime are filled in: re-query until they are
    for (let i = 0; i < 200 && !(info['total-time']! > 0); i++) {
      await sleep(5);
      info = await proc.qmp.execute<MigrateInfo>('query-migrate');
    }
    t.status = 'completed';
    this.stopMonitor(t);
    vm.running = false;
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
    return t.finalStats;
  }

  // ---- step 8 and the end -----------------------------------------------------------------------------

  async stopSource(vmId: string): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm) return;
    if (vm.transfer) this.stopMonitor(vm.transfer);
    await this.destroy(vm, true);
  }

  /** Runs the memory check on a VM of this host (the target, after step 7). */
  async checkMemory(vmId: string, timeoutMs?: number): Promise<MemoryCheckResult> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} is not on this host`);
    const proc = await this.procOf(vm);
    return checkGuestMemory(proc.qmp, { memStart: vm.state.guest.memStart, memEnd: vm.state.guest.memEnd, dir: this.o.runDir, ...(timeoutMs ? { timeoutMs } : {}) });
  }

  /** Ends every QEMU of this driver and removes its files (tests; an agent's close() leaves VMs running). */
  async destroyAll(): Promise<void> {
    await Promise.all([...this.vms.values()].map((v) => this.destroy(v, true)));
  }

  /** Closes the QMP connections; the VMs keep running and a restarted agent finds them again. */
  async close(): Promise<void> {
    for (const vm of this.vms.values()) {
      if (vm.transfer) this.stopMonitor(vm.transfer);
      vm.proc?.qmp.close();
      vm.proc = undefined;
    }
  }

  // ---- internals: processes and state -----------------------------------------------------------------

  private chooseCpu(probe: CpuProbe, spec: VmSpec): CpuChoice {
    return chooseCpu(probe, spec.cpuBaseline, `VM ${spec.id} (${spec.name})`);
  }

  private files(vmId: string) {
    const d = this.o.runDir;
    return { state: join(d, `${vmId}.json`), qmpSocket: join(d, `${vmId}.qmp`), logFile: join(d, `${vmId}.log`), serialFile: join(d, `${vmId}.serial`) };
  }

  private async launch(spec: VmSpec, choice: CpuChoice, role: VmState['role'], migrationId?: string): Promise<Vm> {
    const f = this.files(spec.id);
    for (const p of [f.qmpSocket, f.serialFile, f.logFile]) rmSync(p, { force: true });
    const spin = this.o.spinItersPerSec?.[choice.accel] ?? DEFAULT_SPIN_ITERS_PER_SEC[choice.accel];
    const guest = guestParamsFor(spec.workload || !this.o.defaultWorkload ? spec : { ...spec, workload: this.o.defaultWorkload }, spin);
    const image = await buildGuestImage(join(this.o.runDir, 'images'), guest);
    const args = [
      '-name', `guest=${spec.name},debug-threads=on`,
      '-uuid', spec.id,
      '-machine', `${MACHINE_TYPE},accel=${choice.accel}`,
      '-cpu', choice.cpu,
      '-m', String(spec.memoryMiB),
      '-smp', String(spec.vcpus),
      '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', `file:${f.serialFile}`,
      // the shared, read-only-in-practice boot image (the guest never writes it); image locks move with the migration
      '-drive', `file=${image},format=raw,if=ide,index=0,media=disk`,
      ...(role === 'incoming' ? ['-incoming', 'defer', '-S'] : []),
      ...(await this.sandboxArgs()),
    ];
    const proc = await QemuProcess.launch({ binary: this.o.binary, args, qmpSocket: f.qmpSocket, logFile: f.logFile, label: `VM ${spec.id}` });
    const state: VmState = {
      vmId: spec.id,
      spec,
      role,
      ...(migrationId ? { migrationId } : {}),
      accel: choice.accel,
      cpu: choice.cpu,
      guest,
      image,
      pid: proc.pid,
      qmpSocket: f.qmpSocket,
      logFile: f.logFile,
      serialFile: f.serialFile,
      startedAt: new Date().toISOString(),
    };
    const vm: Vm = { state, running: role === 'vm' };
    this.vms.set(spec.id, vm);
    this.wire(vm, proc);
    this.persist(vm);
    return vm;
  }

  private wire(vm: Vm, proc: QemuProcess): void {
    vm.proc = proc;
    proc.qmp.on('event', (e: QmpEvent) => {
      if (e.event === 'STOP') {
        vm.running = false;
        vm.lastStop = e.at;
        if (vm.transfer && (vm.transfer.status === 'running' || vm.transfer.status === 'ready')) vm.transfer.stoppedAt = e.at;
      } else if (e.event === 'RESUME') {
        vm.running = true;
        vm.lastResume = e.at;
      } else if ((e.event === 'MIGRATION' || e.event === 'MIGRATION_PASS') && vm.transfer) {
        void this.poll(vm, vm.transfer);
      }
    });
    void proc.exited.then(() => {
      if (vm.proc !== proc) return;
      vm.proc = undefined;
      if (!isOurQemu(vm.state.pid, vm.state.qmpSocket)) {
        vm.dead = true;
        vm.running = false;
        const t = vm.transfer;
        if (t && !t.failure && t.status !== 'completed') {
          t.status = 'failed';
          t.failure = new FlexmigError(ErrorCode.AgentFailed, `the QEMU of VM ${vm.state.vmId} exited during the migration: ${tail(vm.state.logFile, 600)}`);
          this.stopMonitor(t);
          this.wake(t);
        }
      }
    });
  }

  /** The live QMP connection of a VM, re-attaching after an agent restart. */
  private async procOf(vm: Vm): Promise<QemuProcess> {
    if (vm.proc && vm.proc.qmp.isOpen) return vm.proc;
    if (vm.dead) throw new FlexmigError(ErrorCode.NotFound, `the QEMU of VM ${vm.state.vmId} is not running`);
    vm.attaching ??= (async () => {
      try {
        const p = await QemuProcess.attach(vm.state.pid, vm.state.qmpSocket, vm.state.logFile, `VM ${vm.state.vmId}`);
        this.wire(vm, p);
        const st = await p.qmp.execute<{ running: boolean }>('query-status');
        vm.running = st.running;
        return p;
      } catch (e) {
        if (!isOurQemu(vm.state.pid, vm.state.qmpSocket)) {
          vm.dead = true;
          vm.running = false;
        }
        throw new FlexmigError(ErrorCode.Unavailable, `VM ${vm.state.vmId}: cannot reach its QEMU (pid ${vm.state.pid}): ${(e as Error).message}`);
      } finally {
        vm.attaching = undefined;
      }
    })();
    return vm.attaching;
  }

  private persist(vm: Vm): void {
    if (vm.dead) return;
    writePrivateFileAtomic(this.files(vm.state.vmId).state, JSON.stringify(vm.state, null, 1));
  }

  /** At construction: finds the QEMUs an earlier agent left running (state files in the run dir). */
  private recover(): void {
    for (const name of readdirSync(this.o.runDir)) {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json$/i.test(name)) continue; // <vmId>.json only
      const read = readJsonFile(join(this.o.runDir, name), VmStateSchema);
      if (read.kind !== 'ok') {
        // not ours or damaged: never trusted to name a pid or socket; left for an operator
        if (read.kind === 'invalid') this.log.error(`ignoring ${join(this.o.runDir, name)}: not a valid VM state file (${read.reason})`);
        continue;
      }
      const state = read.value;
      if (isOurQemu(state.pid, state.qmpSocket) && existsSync(state.qmpSocket)) {
        const vm: Vm = { state, running: state.role === 'vm' };
        this.vms.set(state.vmId, vm);
        // learn the run state in the background; listVms answers with the best guess until then
        this.procOf(vm).catch(() => undefined);
      } else {
        // it ended while no agent watched: report it stopped once, drop its files
        this.vms.set(state.vmId, { state, running: false, dead: true });
        this.removeFiles(state.vmId);
      }
    }
  }

  private removeFiles(vmId: string): void {
    const f = this.files(vmId);
    for (const p of [f.state, f.qmpSocket, f.logFile, f.serialFile, `${f.state}.${process.pid}.tmp`]) rmSync(p, { force: true });
  }

  private async destroy(vm: Vm, graceful = false): Promise<void> {
    const proc = vm.proc ?? (isOurQemu(vm.state.pid, vm.state.qmpSocket) ? await this.procOf(vm).catch(() => undefined) : undefined);
    if (proc) {
      if (graceful) await proc.quit();
      else await proc.kill();
    } else if (isOurQemu(vm.state.pid, vm.state.qmpSocket)) {
      process.kill(vm.state.pid, 'SIGKILL');
      for (let i = 0; i < 100 && isOurQemu(vm.state.pid, vm.state.qmpSocket); i++) await sleep(20);
    }
    vm.dead = true;
    vm.running = false;
    vm.proc = undefined;
    this.removeFiles(vm.state.vmId);
    if (this.vms.get(vm.state.vmId) === vm) this.vms.delete(vm.state.vmId);
  }

  private source(vmId: string): Vm {
    const vm = this.vms.get(vmId);
    if (!vm || vm.dead) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    return vm;
  }

  // ---- internals: the migration stream ------------------------------------------------------------------

  private async startMigration(vm: Vm, proc: QemuProcess, cmd: StepCommand, progress: ProgressSink): Promise<Transfer> {
    const explicit = (cmd as { incomingAddress?: string }).incomingAddress;
    if (!explicit && !cmd.targetAddress) throw new FlexmigError(ErrorCode.ValidationFailed, `step 3 of migration ${cmd.migrationId} has no targetAddress: the source cannot reach the target`);
    if (!explicit && !this.o.portRange) {
      throw new FlexmigError(ErrorCode.ValidationFailed, `step 3 of migration ${cmd.migrationId} carries no incomingAddress (the target's step-2 reply) and no fixed QEMU_MIGRATION_PORT_RANGE is set`);
    }
    const uri = explicit ? tcpUri(addressHost(explicit), explicit.slice(explicit.lastIndexOf(':') + 1)) : tcpUri(addressHost(cmd.targetAddress!), migrationPort(cmd.migrationId, this.o.portRange!));
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
      'downtime-limit': cmd.policy.downtimeLimitMs,
      'max-bandwidth': cmd.policy.bandwidthMiBps ? cmd.policy.bandwidthMiBps * BYTES_PER_MIB : UNCAPPED_BANDWIDTH_BYTES,
      'cpu-throttle-initial': this.o.throttleInitialPct ?? policy.throttleInitialPct,
      'cpu-throttle-increment': this.o.throttleIncrementPct ?? policy.throttleIncrementPct,
      'max-cpu-throttle': policy.maxThrottlePct,
      ...(this.o.tlsDir ? await useTls(qmp, this.o.tlsDir, 'client') : {}),
    });
    const now = Date.now();
    const t: Transfer = {
      migrationId: cmd.migrationId,
      uri,
      wire: cmd.policy,
      policy,
      startedAt: now,
      status: 'running',
      history: [],
      syncCount: 0,
      syncAt: now,
      syncTransferred: 0,
      transferred: 0,
      transferredAt: now,
      downtimeLimitMs: cmd.policy.downtimeLimitMs,
      sink: progress,
      polling: false,
      pollAgain: false,
      waiters: new Set(),
      postcopy: false,
    };
    vm.transfer = t;
    vm.state.migrationId = cmd.migrationId;
    this.persist(vm);
    await qmp.execute('migrate', { uri });
    t.timer = setInterval(() => void this.poll(vm, t), this.pollMs);
    void this.poll(vm, t);
    return t;
  }

  /** Waits until `done()` holds; throws the transfer's failure (after its clean-up) if it failed first. */
  private async until(vm: Vm, t: Transfer, done: () => boolean): Promise<void> {
    for (;;) {
      if (t.failure) {
        await t.settled;
        throw t.failure;
      }
      if (done()) return;
      await new Promise<void>((r) => {
        t.waiters.add(r);
        setTimeout(r, this.pollMs * 2).unref();
      });
    }
  }

  private wake(t: Transfer): void {
    const ws = [...t.waiters];
    t.waiters.clear();
    for (const w of ws) w();
  }

  private stopMonitor(t: Transfer): void {
    if (t.timer) clearInterval(t.timer);
    t.timer = undefined;
  }

  /** One look at query-migrate: pass samples, policy, watchdog, progress. Coalesced: never two at once. */
  private async poll(vm: Vm, t: Transfer): Promise<void> {
    if (t.polling) {
      t.pollAgain = true;
      return;
    }
    if (t.status !== 'running' && t.status !== 'ready') return;
    t.polling = true;
    try {
      do {
        t.pollAgain = false;
        await this.pollOnce(vm, t);
      } while (t.pollAgain && (t.status === 'running' || t.status === 'ready'));
    } catch (e) {
      if (t.status === 'running' || t.status === 'ready') this.fail(vm, t, new FlexmigError(ErrorCode.AgentFailed, `following the migration of VM ${vm.state.vmId} failed: ${(e as Error).message}`));
    } finally {
      t.polling = false;
      this.wake(t);
    }
  }

  private async pollOnce(vm: Vm, t: Transfer): Promise<void> {
    const proc = vm.proc;
    if (!proc) throw new FlexmigError(ErrorCode.Unavailable, 'the source QEMU is gone');
    const info = await proc.qmp.execute<MigrateInfo>('query-migrate', undefined, 10_000);
    if (t.status !== 'running' && t.status !== 'ready') return;
    const now = Date.now();
    if (info.ram) {
      t.last = info;
      const ram = info.ram;
      if (ram.transferred !== t.transferred) {
        t.transferred = ram.transferred;
        t.transferredAt = now;
      }
      // dirty-sync-count n ≥ 2 means pass n-1 just ended (sync 1 starts pass 1)
      if (ram['dirty-sync-count'] > t.syncCount) {
        if (ram['dirty-sync-count'] >= 2) {
          const bw = (ram.mbps * 1e6) / 8;
          t.history.push({
            pass: ram['dirty-sync-count'] - 1,
            startMs: t.syncAt - t.startedAt,
            endMs: now - t.startedAt,
            bytesSent: Math.max(0, ram.transferred - t.syncTransferred),
            remainingBytes: ram.remaining,
            dirtyRateBytesPerSec: ram['dirty-pages-rate'] * (ram['page-size'] || 4096),
            bandwidthBytesPerSec: bw > 0 ? bw : 1,
            expectedDowntimeMs: info['expected-downtime'] ?? (bw > 0 ? (ram.remaining / bw) * 1000 : 0),
            throttlePct: info['cpu-throttle-percentage'] ?? 0,
            downtimeLimitMs: t.downtimeLimitMs,
          });
        }
        t.syncCount = ram['dirty-sync-count'];
        t.syncAt = now;
        t.syncTransferred = ram.transferred;
      }
    }
    this.report(t);
    switch (info.status) {
      case 'pre-switchover':
        t.status = 'ready';
        t.stoppedAt ??= vm.lastStop ?? new Date();
        this.stopMonitor(t);
        return;
      case 'failed':
        this.fail(vm, t, new FlexmigError(ErrorCode.AgentFailed, `the migration of VM ${vm.state.vmId} to ${t.uri} failed: ${info['error-desc'] || 'no reason given by QEMU (see the target log)'}; the VM keeps running on the source`));
        return;
      case 'cancelled':
      case 'cancelling':
        this.fail(vm, t, transferCancelled(vm.state.vmId, t.migrationId, 'QEMU cancelled the stream'));
        return;
      case 'completed':
        // cannot happen before migrate-continue with pause-before-switchover; treat as a broken invariant
        this.fail(vm, t, new FlexmigError(ErrorCode.Internal, `the migration of VM ${vm.state.vmId} completed without waiting at pre-switchover`));
        return;
      default:
        break;
    }
    // the own watchdog: QEMU never notices a destination that stops reading
    const stallMs = Math.min(this.o.stallTimeoutMs ?? 20_000, t.wire.progressTimeoutSec * 1000);
    if ((info.status === 'active' || info.status === 'setup' || info.status === 'postcopy-active') && now - t.transferredAt > stallMs) {
      this.fail(vm, t, new FlexmigError(ErrorCode.Timeout, `the migration stream of VM ${vm.state.vmId} to ${t.uri} moved no byte for ${Math.round((now - t.transferredAt) / 1000)} s (the target stopped reading?); cancelled, the VM keeps running on the source`, { code: ConvergenceFailureCode.ProgressTimeout }, false));
      return;
    }
    if (info.status !== 'active' || t.postcopy) return;
    const elapsed = now - t.startedAt;
    const d = decideConvergence(t.history, { ...t.policy, downtimeLimitMs: t.downtimeLimitMs }, elapsed);
    switch (d.action) {
      case 'abort':
        this.fail(vm, t, this.convergenceError(vm, t, d.code, d.reason, elapsed));
        return;
      case 'raise-downtime':
        t.downtimeLimitMs = d.downtimeLimitMs;
        await proc.qmp.execute('migrate-set-parameters', { 'downtime-limit': d.downtimeLimitMs });
        return;
      case 'switch-to-postcopy':
        t.postcopy = true;
        await proc.qmp.execute('migrate-start-postcopy');
        return;
      case 'throttle': // QEMU's auto-converge applies the same rule itself (capability on per the policy)
      case 'continue':
        break;
    }
    // no lever left: fail instead of waiting for the completion timeout
    const throttle = info['cpu-throttle-percentage'] ?? 0;
    const lever = t.wire.postCopy || (t.wire.autoConverge && throttle < t.policy.maxThrottlePct);
    // with auto-converge, only the passes run at the maximum throttle count
    const counted = t.wire.autoConverge ? t.history.filter((p) => p.throttlePct >= t.policy.maxThrottlePct) : t.history;
    const hits = Math.min(trailingNonConvergingPasses(t.history, t.policy.throttleTriggerThresholdPct), counted.length);
    const limit = this.o.notConvergingPasses ?? 8;
    if (!lever && hits >= limit) {
      const reason = !t.wire.autoConverge
        ? `${hits} passes in a row re-dirtied more than ${t.policy.throttleTriggerThresholdPct}% of what they sent and auto-converge is not allowed by the policy`
        : `${hits} passes in a row did not converge even at the maximum throttle of ${throttle}%`;
      this.fail(vm, t, this.convergenceError(vm, t, ConvergenceFailureCode.NotConverging, reason, elapsed));
    }
  }

  private convergenceError(vm: Vm, t: Transfer, code: string, reason: string, elapsedMs: number): FlexmigError {
    const last = t.history[t.history.length - 1];
    const ram = t.last?.ram;
    const mib = (b: number) => Math.round(b / BYTES_PER_MIB);
    const advice = [
      ...(t.wire.autoConverge ? [] : ['allow auto-converge']),
      ...(t.wire.postCopy ? [] : ['allow post-copy']),
      ...(t.wire.bandwidthMiBps ? [`raise or lift the bandwidth cap (${t.wire.bandwidthMiBps} MiB/s)`] : []),
      `raise the downtime limit (${t.downtimeLimitMs} ms; QEMU expected ${Math.round(last?.expectedDowntimeMs ?? 0)} ms)`,
    ];
    return new FlexmigError(
      code === ConvergenceFailureCode.NotConverging ? ErrorCode.Conflict : ErrorCode.Timeout,
      `the memory transfer of VM ${vm.state.vmId} (migration ${t.migrationId}) ${code === 'NOT_CONVERGING' ? 'cannot converge' : code === 'PROGRESS_TIMEOUT' ? 'made no progress within its progress timeout' : 'did not complete within its completion timeout'} ` +
        `after ${t.history.length} pass(es) and ${(elapsedMs / 1000).toFixed(1)} s: ${reason}. ` +
        `Remaining ${mib(ram?.remaining ?? 0)} MiB, dirty rate ${mib((ram?.['dirty-pages-rate'] ?? 0) * 4096)} MiB/s, bandwidth ${Math.round(ram?.mbps ?? 0)} Mbit/s, throttle ${t.last?.['cpu-throttle-percentage'] ?? 0}%. ` +
        `The stream was cancelled and the VM keeps running on the source. To migrate it: ${advice.join(', ')}.`,
      { code, passes: t.history.length, elapsedMs, remainingBytes: ram?.remaining ?? 0, throttlePct: t.last?.['cpu-throttle-percentage'] ?? 0, downtimeLimitMs: t.downtimeLimitMs },
      false,
    );
  }

  private fail(vm: Vm, t: Transfer, err: FlexmigError): void {
    if (t.failure) return;
    t.status = err.details?.code === ConvergenceFailureCode.Cancelled ? 'cancelled' : 'failed';
    t.failure = err;
    this.stopMonitor(t);
    t.settled = this.abortStream(vm);
    this.wake(t);
  }

  /**
   * migrate_cancel (if a stream runs), wait until QEMU is done with it, and make sure the guest runs on
   * the source. `evenIfCompleted`: resumeSource after step 6 (the saga never asks after step 7).
   */
  private async abortStream(vm: Vm, evenIfCompleted = false): Promise<void> {
    let proc: QemuProcess;
    try {
      proc = await this.procOf(vm);
    } catch {
      return; // the source QEMU itself is gone: nothing to resume (the error says so)
    }
    const q = () => proc.qmp.execute<MigrateInfo>('query-migrate');
    try {
      let info = await q();
      if (!FINAL.has(info.status) && info.status !== 'none') {
        await proc.qmp.execute('migrate_cancel');
        for (let i = 0; i < 500; i++) {
          info = await q();
          if (FINAL.has(info.status) || info.status === 'none') break;
          await sleep(10);
        }
      }
      if (info.status === 'completed' && !evenIfCompleted) return;
      // QEMU restarts a guest that was running when the migration began; make sure of it
      for (let i = 0; i < 100; i++) {
        const st = await proc.qmp.execute<{ status: string; running: boolean }>('query-status');
        if (st.running) {
          vm.running = true;
          return;
        }
        if (st.status === 'paused' || st.status === 'postmigrate') {
          await proc.qmp.execute('cont');
          vm.running = true;
          return;
        }
        await sleep(10); // finish-migrate and friends: QEMU is still moving it
      }
    } catch {
      // the QMP socket vanished: the caller's error says why
    }
  }

  private report(t: Transfer): void {
    const info = t.last;
    const ram = info?.ram;
    if (!t.sink || !ram) return;
    const bw = (ram.mbps * 1e6) / 8;
    try {
      t.sink({
        pass: Math.max(1, ram['dirty-sync-count']),
        percent: ram.total > 0 ? Math.max(0, Math.min(100, (100 * (ram.total - ram.remaining)) / ram.total)) : 0,
        totalBytes: ram.total,
        transferredBytes: ram.transferred,
        remainingBytes: ram.remaining,
        dirtyRateBytesPerSec: ram['dirty-pages-rate'] * (ram['page-size'] || 4096),
        bandwidthBytesPerSec: bw,
        expectedDowntimeMs: info['expected-downtime'] ?? 0,
        throttlePct: info['cpu-throttle-percentage'] ?? 0,
      });
    } catch {
      // progress is lossy
    }
  }

  private stats(t: Transfer): TransferStats {
    const ram = t.last?.ram;
    return {
      passes: t.history.length,
      bytesTransferred: ram?.transferred ?? 0,
      remainingBytes: ram?.remaining ?? 0,
      throttlePct: t.last?.['cpu-throttle-percentage'] ?? 0,
    };
  }
}
