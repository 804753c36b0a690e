/**
 * The source's end of a link probe (docs/prediction.md, agent.{hostId}.link.probe): a short-lived QEMU
 * that never runs a guest (`-S`, no devices, no disk) migrates its RAM to the target's link sink
 * (link-sink.ts), and the bandwidth is QEMU's own figures for that stream. What it measures is what QEMU
 * itself pushes towards the target: its own pipeline when that is the bottleneck (TCG on loopback), the
 * link on a real network.
 *
 * The RAM is a private mapping of a file of random bytes: QEMU sends a zero page as a flag only, so RAM
 * that was never written would measure nothing. The probe runs in its own directory of the run dir
 * (`link-probe-*`), removed with the process whatever happens; one an agent left behind when it died is
 * removed at the next start (removeStaleProbes).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { BYTES_PER_MIB } from '@flexmig/migration-model';
import { sleep } from '@flexmig/timing';
import type { Accel } from './cpu-probe';
import { MigrateInfo } from './migrate-info';
import { addressUri } from './qemu-address';
import { QemuProcess, qemusWithQmpIn } from './qemu-process';
import { MACHINE_TYPE } from './vm-registry';

const DIR_PREFIX = 'link-probe-';

export interface LinkProbeOptions {
  binary: string;
  runDir: string;
  /** The accelerator the probe QEMU starts with (it runs no vCPU: any that starts does; TCG when there). */
  accel: Accel;
  /** `-sandbox …` when this QEMU has seccomp (VmRegistry.sandboxArgs). */
  sandboxArgs: readonly string[];
  sizeMiB: number;
  /** QEMU's max-bandwidth for the stream (uncapped: UNCAPPED_BANDWIDTH_BYTES). */
  maxBandwidthBytes: number;
  targetHostId: string;
  /** The target's link sink, `host:port`. */
  targetAddress: string;
  /** Give up (and cancel the stream) after this long (ms). */
  timeoutMs: number;
  pollMs?: number;
}

export interface LinkProbeResult {
  bandwidthBytesPerSec: number;
  bytes: number;
  ms: number;
  measuredAt: Date;
  detail: string;
}

/**
 * The bandwidth of a completed stream from QEMU's figures: the RAM bytes it sent (`ram.transferred`) over
 * the stream's time less its setup (`total-time` − `setup-time`: the model keeps setup apart). Undefined
 * while QEMU 7.2 has not filled them in yet (`completed` is set before `total-time`, reference/qemu-migration.md).
 */
export function streamBandwidth(info: MigrateInfo): { bytes: number; ms: number; bytesPerSec: number } | undefined {
  const total = info['total-time'] ?? 0;
  const bytes = info.ram?.transferred ?? 0;
  if (info.status !== 'completed' || total <= 0 || bytes <= 0) return undefined;
  // at least 1 ms: a stream that fits in one millisecond is reported at bytes/ms, not infinitely fast
  const ms = Math.max(1, total - (info['setup-time'] ?? 0));
  return { bytes, ms, bytesPerSec: (bytes * 1000) / ms };
}

/** A file of `sizeMiB` random bytes (0600), written 1 MiB at a time. */
function writeRandomFile(path: string, sizeMiB: number): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomBytes(BYTES_PER_MIB));
  } finally {
    closeSync(fd);
  }
}

/** Runs one probe; the probe QEMU is killed and its directory removed in every case. */
export async function runLinkProbe(o: LinkProbeOptions): Promise<LinkProbeResult> {
  const what = `link probe towards ${o.targetHostId} (${o.targetAddress})`;
  const uri = addressUri(o.targetAddress, `the link sink address of ${o.targetHostId}`);
  const dir = mkdtempSync(join(o.runDir, DIR_PREFIX));
  let proc: QemuProcess | undefined;
  try {
    const ram = join(dir, 'ram');
    writeRandomFile(ram, o.sizeMiB);
    proc = await QemuProcess.launch({
      binary: o.binary,
      args: [
        '-name', 'flexmig-link-probe',
        '-machine', `${MACHINE_TYPE},accel=${o.accel},memory-backend=pm`,
        '-object', `memory-backend-file,id=pm,size=${o.sizeMiB}M,mem-path=${ram},share=off`,
        '-m', `${o.sizeMiB}M`,
        '-nodefaults', '-no-user-config', '-display', 'none', '-S',
        ...o.sandboxArgs,
      ],
      qmpSocket: join(dir, 'probe.qmp'),
      logFile: join(dir, 'probe.log'),
      label: what,
    });
    const qmp = proc.qmp;
    // no return path: the sink is not a QEMU and answers nothing
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'return-path', state: false }] });
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': o.maxBandwidthBytes });
    await qmp.execute('migrate', { uri });
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      const info = await qmp.execute<MigrateInfo>('query-migrate');
      const bw = streamBandwidth(info);
      if (bw) {
        const mibps = bw.bytesPerSec / BYTES_PER_MIB;
        return {
          bandwidthBytesPerSec: bw.bytesPerSec,
          bytes: bw.bytes,
          ms: bw.ms,
          measuredAt: new Date(),
          detail: `probe QEMU (-S, ${o.sizeMiB} MiB of random RAM) migrated to ${o.targetHostId}'s link sink ${o.targetAddress}: ${bw.bytes} bytes in ${bw.ms} ms (QEMU's ram.transferred over total-time less setup), ${mibps.toFixed(0)} MiB/s`,
        };
      }
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new FlexmigError(
          ErrorCode.AgentFailed,
          `${what}: QEMU's stream to ${uri} ${info.status}: ${info['error-desc'] || proc.logTail(500) || 'no reason given'}. Is the target's link sink (agent.${o.targetHostId}.link.sink) open, unexpired and reachable from this host?`,
        );
      }
      if (Date.now() > deadline) {
        await qmp.execute('migrate_cancel').catch(() => undefined);
        throw new FlexmigError(ErrorCode.Timeout, `${what}: the stream to ${uri} is still ${info.status} after ${o.timeoutMs} ms (${info.ram?.transferred ?? 0} bytes sent): the link or the target's sink is too slow for the probe; lower QEMU_LINK_PROBE_MIB`);
      }
      await sleep(o.pollMs ?? 20);
    }
  } finally {
    await proc?.kill().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** At start: the probes an agent that died left behind (their QEMU, their directory). */
export function removeStaleProbes(runDir: string): void {
  for (const name of readdirSync(runDir)) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(runDir, name);
    for (const q of qemusWithQmpIn(dir)) {
      try {
        process.kill(q.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
