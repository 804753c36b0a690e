/**
 * The QEMUs of this host: launch, attach (after an agent restart), persist, recover, destroy.
 *
 * A VM is one QEMU process (`-cpu <baseline>,enforce`, pinned machine type, no disk but its boot image:
 * the workload image built from guest/workload.S, identical bytes on every host). Per VM the run dir
 * holds `<id>.json` (state, so a restarted agent finds its QEMUs), `<id>.qmp`, `<id>.log`, `<id>.serial`
 * and `<id>.img`, the VM's own copy of the built image (`images/`, shared by VMs of one workload).
 *
 * The state file is written before QEMU is started (without a pid), so that an agent killed during a
 * launch leaves a trace; at start, a QEMU of this run dir that no state file names is such a launch, and
 * is killed: the step that started it never got an answer and starts another when it is retried.
 */
import { chmodSync, constants, copyFileSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { z } from 'zod';
import { AgentVm, ErrorCode, FlexmigError, UuidSchema, VmSpec, VmSpecSchema } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { Accel, CpuChoice } from './cpu-probe';
import { DEFAULT_SPIN_ITERS_PER_SEC, buildGuestImage, guestParamsFor } from './guest/build-guest';
import { PreallocSetting, availableMemoryMiB, decidePrealloc, preallocStartTimeoutMs } from './incoming-prealloc';
import { QemuProcess, isOurQemu, qemusWithQmpIn } from './qemu-process';
import { QmpEvent } from './qmp-client';
import { SANDBOX_ARGS, probeSandbox } from './sandbox';
import type { Transfer } from './transfer-monitor';
import { readJsonFile, writePrivateFileAtomic } from '../../private-files';

export const MACHINE_TYPE = 'pc-i440fx-7.2';

/** A file's text, or undefined when it cannot be read (not Linux's /proc, no such cgroup file). */
const readIfThere = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const VM_FILE = new RegExp(`^${UUID}\\.json$`, 'i');
const VM_SOCKET = new RegExp(`^${UUID}\\.qmp$`, 'i');

/** A VM's state file (`<runDir>/<id>.json`), validated when a restarted agent reads it back. */
export const VmStateSchema = z.object({
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
  /**
   * The migration whose step 6 or 7 resumed this copy here (`migrationId` is cleared then): a retry of that
   * step, after an agent that died between the resume and its ledger's record, is answered "resumed" rather
   * than refused for want of an incoming VM.
   */
  resumedBy: UuidSchema.optional(),
  /**
   * Step 5 (pause-source) ran for the migration in `migrationId` on this source: from then on only the
   * saga (a compensation of step 5 or 6) resumes the guest here, never this agent on its own.
   */
  sourcePausedAt: z.string().optional(),
  /**
   * Its QEMU touched all of the guest's memory at start (an incoming copy, incoming-prealloc.ts): its
   * resident memory says nothing of what the guest wrote, so predictions take `residentBytesAtArrival`.
   */
  preallocated: z.boolean().optional(),
  /**
   * For a preallocated copy: how much of the guest's memory held data on the source when its stream started
   * (the source agent's word, QueryStreamEnd), bytes. What predictions take as its resident part here.
   */
  residentBytesAtArrival: z.number().int().min(0).optional(),
});
export type VmState = z.infer<typeof VmStateSchema>;

/**
 * Whether a QEMU that ended without the agent asking did what it is there for: an incoming copy that never
 * ran ends when its stream fails (QEMU 7.2 exits when the load fails: the source cancelled, or died). The
 * migration's own failure says why, and the rollback removes what is left; a warning for it said that
 * something was wrong on this host when nothing was. Any other QEMU that ends on its own is news.
 */
export function endsWithItsStream(state: Pick<VmState, 'role' | 'resumedAt'>): boolean {
  return state.role === 'incoming' && state.resumedAt === undefined;
}
/** A state file as read back: without a pid while its QEMU is being started (written before the process exists). */
const StateFileSchema = VmStateSchema.extend({ pid: VmStateSchema.shape.pid.optional() });

export interface Vm {
  state: VmState;
  proc?: QemuProcess;
  attaching?: Promise<QemuProcess>;
  running: boolean;
  dead?: boolean;
  transfer?: Transfer;
  lastStop?: Date;
  lastResume?: Date;
  /** The incoming state loaded and the guest held paused (step 6 on the target saw it): step 7 only has to `cont`. */
  incomingLoaded?: string;
  /**
   * An incoming copy's stream as its QEMU's last MIGRATION event said (`completed` once the state has loaded),
   * heard whether or not a step waits for it: the target's half of step 6 that comes after the stream ended
   * takes it as it is, without a query to QEMU inside the guest's downtime. Unset after an agent restart
   * until the next event (step 6 then asks QEMU).
   */
  incomingStatus?: string;
}

export interface VmRegistryOptions {
  binary: string;
  runDir: string;
  /** vCPU spin-loop speed per accelerator, to turn a workload's dirty rate into a guest delay. */
  spinItersPerSec?: Partial<Record<Accel, number>>;
  /** The guest workload of VMs whose spec has none (inventory's VMs carry none): the same on every host. */
  defaultWorkload?: VmSpec['workload'];
  /** QEMU_PREALLOC_INCOMING: whether an incoming copy's memory is touched before its stream (incoming-prealloc.ts). Default auto. */
  preallocIncoming?: PreallocSetting;
  /** The memory this agent's QEMUs may still take, MiB (tests; default: `availableMemoryMiB` of this host and cgroup). */
  availableMemoryMiB?: () => number | undefined;
}

/** Who follows the migration streams hears what happens to a VM's QEMU (the transfer monitor). */
export interface VmObserver {
  /**
   * A QEMU this agent attaches to (an earlier agent started it), before anyone else uses it: a migration
   * stream no one drives any more is settled here. Never throws.
   */
  onAttach(vm: Vm, proc: QemuProcess): Promise<void>;
  /** Every QMP event, after the registry noted the run state it says. */
  onEvent(vm: Vm, e: QmpEvent): void;
  /** The QEMU exited (not only its QMP connection); `end` is QemuProcess.describeEnd(): its exit and its log's last lines. */
  onExit(vm: Vm, end: string): void;
}

export class VmRegistry {
  private readonly vms = new Map<string, Vm>();
  private sandbox?: Promise<readonly string[]>;
  private readonly log = new Logger('qemu');

  constructor(
    private readonly o: VmRegistryOptions,
    private readonly observer: VmObserver,
  ) {}

  get(vmId: string): Vm | undefined {
    return this.vms.get(vmId);
  }

  all(): Vm[] {
    return [...this.vms.values()];
  }

  list(): AgentVm[] {
    return this.all().map((v) => {
      const s = v.state;
      const state: AgentVm['state'] = v.dead ? 'stopped' : s.role === 'incoming' ? (v.running ? 'running' : s.resumedAt ? 'running' : 'incoming') : v.running ? 'running' : 'paused';
      return { vmId: s.vmId, state, memoryMiB: s.spec.memoryMiB, ...(s.migrationId ? { migrationId: s.migrationId } : {}) };
    });
  }

  /** Where a VM's files and QEMU are (tests, demo). */
  info(vmId: string): (VmState & { alive: boolean }) | undefined {
    const v = this.vms.get(vmId);
    return v && { ...v.state, alive: !v.dead && isOurQemu(v.state.pid, v.state.qmpSocket) };
  }

  /** `-sandbox …` when this QEMU has seccomp (asked once), else nothing, said once in the log. */
  sandboxArgs(): Promise<readonly string[]> {
    this.sandbox ??= probeSandbox(this.o.binary, this.o.runDir).then((s) => {
      if (s.on) return SANDBOX_ARGS;
      this.log.warn(`${this.o.binary} does not start with ${SANDBOX_ARGS.join(' ')} (${s.reason}): its VMs run WITHOUT the seccomp sandbox (QEMU built without seccomp?)`);
      return [];
    });
    return this.sandbox;
  }

  private files(vmId: string) {
    const d = this.o.runDir;
    return { state: join(d, `${vmId}.json`), qmpSocket: join(d, `${vmId}.qmp`), logFile: join(d, `${vmId}.log`), serialFile: join(d, `${vmId}.serial`), image: join(d, `${vmId}.img`) };
  }

  /**
   * A fresh copy of the built image at `to` (0600). The old file, if any, is unlinked rather than
   * overwritten: a QEMU that still has it open keeps its own bytes.
   */
  private ownCopy(built: string, to: string): string {
    rmSync(to, { force: true });
    copyFileSync(built, to, constants.COPYFILE_EXCL);
    chmodSync(to, 0o600);
    return to;
  }

  /** Whether an incoming copy of `spec` is started with its memory touched (incoming-prealloc.ts), said in the log. */
  private preallocates(spec: VmSpec, migrationId: string | undefined): boolean {
    const available = this.o.availableMemoryMiB ?? (() => availableMemoryMiB(readIfThere));
    const setting = this.o.preallocIncoming ?? 'auto';
    const d = decidePrealloc(setting, spec.memoryMiB, available());
    const what = `VM ${spec.id}: the incoming copy of migration ${migrationId ?? '(none)'}`;
    if (d.prealloc) this.log.log(`${what} touches its ${spec.memoryMiB} MiB before the stream (${d.reason})`);
    else if (setting === 'auto') this.log.warn(`${what} does not touch its memory before the stream: ${d.reason}`);
    else this.log.log(`${what} does not touch its memory before the stream (${d.reason})`);
    return d.prealloc;
  }

  async launch(spec: VmSpec, choice: CpuChoice, role: VmState['role'], migrationId?: string): Promise<Vm> {
    const f = this.files(spec.id);
    for (const p of [f.qmpSocket, f.serialFile, f.logFile]) rmSync(p, { force: true });
    const spin = this.o.spinItersPerSec?.[choice.accel] ?? DEFAULT_SPIN_ITERS_PER_SEC[choice.accel];
    const guest = guestParamsFor(spec.workload || !this.o.defaultWorkload ? spec : { ...spec, workload: this.o.defaultWorkload }, spin);
    const image = this.ownCopy(await buildGuestImage(join(this.o.runDir, 'images'), guest), f.image);
    const prealloc = role === 'incoming' && this.preallocates(spec, migrationId);
    const args = [
      '-name', `guest=${spec.name},debug-threads=on`,
      '-uuid', spec.id,
      '-machine', `${MACHINE_TYPE},accel=${choice.accel}`,
      '-cpu', choice.cpu,
      '-m', String(spec.memoryMiB),
      '-smp', String(spec.vcpus),
      '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', `file:${f.serialFile}`,
      // the VM's own copy of the boot image: QEMU write-locks a disk image, so a second VM booting the
      // shared one dies at start, and an incoming VM fails at `cont` (late-block-activate takes the lock
      // only then). Image locks move with the migration.
      '-drive', `file=${image},format=raw,if=ide,index=0,media=disk`,
      ...(role === 'incoming' ? ['-incoming', 'defer', '-S'] : []),
      // with one thread per vCPU (QEMU's default for -mem-prealloc), before QEMU answers qmp_capabilities
      ...(prealloc ? ['-mem-prealloc'] : []),
      ...(await this.sandboxArgs()),
    ];
    const launching: Omit<VmState, 'pid'> = {
      vmId: spec.id,
      spec,
      role,
      ...(migrationId ? { migrationId } : {}),
      accel: choice.accel,
      cpu: choice.cpu,
      guest,
      image,
      qmpSocket: f.qmpSocket,
      logFile: f.logFile,
      serialFile: f.serialFile,
      startedAt: new Date().toISOString(),
      ...(prealloc ? { preallocated: true } : {}),
    };
    // on disk before the process exists: an agent killed from here on leaves a QEMU its successor finds
    writePrivateFileAtomic(f.state, JSON.stringify(launching, null, 1));
    const proc = await QemuProcess.launch({
      binary: this.o.binary,
      args,
      qmpSocket: f.qmpSocket,
      logFile: f.logFile,
      label: `VM ${spec.id}`,
      ...(prealloc ? { startTimeoutMs: preallocStartTimeoutMs(spec.memoryMiB) } : {}),
    }).catch((e: unknown) => {
      for (const p of [f.image, f.state]) rmSync(p, { force: true });
      throw e;
    });
    const state: VmState = { ...launching, pid: proc.pid };
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
      } else if (e.event === 'RESUME') {
        vm.running = true;
        vm.lastResume = e.at;
      } else if (e.event === 'MIGRATION' && vm.state.role === 'incoming') {
        vm.incomingStatus = String(e.data?.status);
      }
      this.observer.onEvent(vm, e);
    });
    void proc.exited.then(() => {
      if (vm.proc !== proc) return;
      vm.proc = undefined;
      if (!isOurQemu(vm.state.pid, vm.state.qmpSocket)) {
        vm.dead = true;
        vm.running = false;
        const end = proc.describeEnd();
        if (!proc.exit?.asked) {
          if (endsWithItsStream(vm.state)) this.log.log(`VM ${vm.state.vmId}: its incoming copy of migration ${vm.state.migrationId ?? '(none)'} ended with its stream: ${end}`);
          // any other QEMU the agent did not end is news: its log (removed with the VM) says why
          else this.log.warn(`VM ${vm.state.vmId}: ${end}`);
        }
        this.observer.onExit(vm, end);
      }
    });
  }

  /** The live QMP connection of a VM, re-attaching after an agent restart. */
  async procOf(vm: Vm): Promise<QemuProcess> {
    if (vm.proc && vm.proc.qmp.isOpen) return vm.proc;
    if (vm.dead) throw new FlexmigError(ErrorCode.NotFound, `the QEMU of VM ${vm.state.vmId} is not running`);
    vm.attaching ??= (async () => {
      try {
        const p = await QemuProcess.attach(vm.state.pid, vm.state.qmpSocket, vm.state.logFile, `VM ${vm.state.vmId}`);
        // settled before the connection is handed to anyone (vm.proc is set only after it)
        await this.observer.onAttach(vm, p);
        this.persist(vm);
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

  persist(vm: Vm): void {
    if (vm.dead) return;
    writePrivateFileAtomic(this.files(vm.state.vmId).state, JSON.stringify(vm.state, null, 1));
  }

  /**
   * At start: finds the QEMUs an earlier agent left running (state files in the run dir), and kills those
   * of this run dir that no state file names (a launch the earlier agent did not live to finish).
   */
  recover(): void {
    const claimed = new Set<number>();
    const launching: string[] = [];
    for (const name of readdirSync(this.o.runDir)) {
      if (!VM_FILE.test(name)) continue; // <vmId>.json only
      const read = readJsonFile(join(this.o.runDir, name), StateFileSchema);
      if (read.kind !== 'ok') {
        // not ours or damaged: never trusted to name a pid or socket; left for an operator
        if (read.kind === 'invalid') this.log.error(`ignoring ${join(this.o.runDir, name)}: not a valid VM state file (${read.reason})`);
        continue;
      }
      const { pid } = read.value;
      if (pid === undefined) {
        launching.push(read.value.vmId); // its QEMU, if it got that far, is killed below
        continue;
      }
      const state: VmState = { ...read.value, pid };
      if (isOurQemu(state.pid, state.qmpSocket) && existsSync(state.qmpSocket)) {
        claimed.add(state.pid);
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
    for (const q of qemusWithQmpIn(this.o.runDir)) {
      // a socket the registry names (<vmId>.qmp), of a process no state file claims
      if (claimed.has(q.pid) || !VM_SOCKET.test(q.socketName)) continue;
      this.log.warn(`killing QEMU pid ${q.pid} (${join(this.o.runDir, q.socketName)}): an earlier agent started it and was gone before it recorded it; the step that started it got no answer`);
      try {
        process.kill(q.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    for (const vmId of launching) this.removeFiles(vmId);
  }

  private removeFiles(vmId: string): void {
    const f = this.files(vmId);
    for (const p of [f.state, f.qmpSocket, f.logFile, f.serialFile, f.image, `${f.state}.${process.pid}.tmp`]) rmSync(p, { force: true });
  }

  async destroy(vm: Vm, graceful = false): Promise<void> {
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
}
