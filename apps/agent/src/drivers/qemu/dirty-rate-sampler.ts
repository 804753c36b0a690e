/**
 * A running VM's dirty rate and working set, measured by QEMU itself (issue 12, docs/prediction.md).
 *
 * QEMU 7.2's `calc-dirty-rate` in its default `page-sampling` mode (the only one that works under TCG
 * here: `dirty-bitmap` needs KVM's dirty log, `dirty-ring` a dirty ring) hashes a random sample of the
 * guest's pages, waits `calc-time` seconds, hashes them again, and reports the share that changed as a
 * rate in MiB/s. That is DISTINCT pages dirtied over the window, so one window cannot tell a guest that
 * writes fast into a small set from one that writes slowly everywhere. Two windows can:
 *   - a short one (1 s) gives the dirty rate D (a lower bound when the set fills within the second);
 *   - a long one (`longSec`, 4 s) gives the bytes dirtied in it: once the set is full that is the
 *     working set W, otherwise D × longSec ≤ W, and either way min(W, D·t) is what the model needs.
 * A sample is taken on a schedule for every running VM that is not migrating, and on demand.
 */
import { Logger } from '@nestjs/common';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { BYTES_PER_MIB } from '@flexmig/migration-model';
import { sleep } from '@flexmig/timing';
import type { DirtyRateObservation } from '../driver';
import type { QmpClient } from './qmp-client';

/** `query-dirty-rate` (QEMU 7.2). `dirty-rate` is MiB/s, present once `status` is `measured`. */
interface DirtyRateInfo {
  status: 'unstarted' | 'measuring' | 'measured';
  'dirty-rate'?: number;
  'calc-time': number;
  'sample-pages': number;
  mode?: string;
}

/** What the sampler needs of a VM: its QMP connection, its memory, whether it may be sampled now. */
export interface SampledVm {
  qmp: () => Promise<QmpClient>;
  memoryBytes: number;
  /** False while it migrates or is paused: QEMU then measures the migration, not the guest. */
  sampleable: boolean;
  /** The memory that holds data now (guest-residency.ts), if it can be read. */
  residentBytes?: () => Promise<number | undefined>;
}

export interface DirtyRateSamplerOptions {
  vmOf: (vmId: string) => SampledVm | undefined;
  /** Every VM to sample on the schedule. */
  vmIds: () => string[];
  /** Period of the scheduled sampling (0: on demand only). */
  intervalMs: number;
  /** Length of the long window in whole seconds (≥ 2); the short one is 1 s. */
  longSec?: number;
  /** QEMU's `sample-pages`: pages sampled per GiB of guest memory, 128..10000 (default 512; more resolves small working sets). */
  samplePagesPerGiB?: number;
}

const MiB = BYTES_PER_MIB;

/** Runs one calc-dirty-rate window and returns the rate it measured, in bytes/s. */
async function measureWindow(qmp: QmpClient, calcSec: number, samplePages: number): Promise<number> {
  await qmp.execute('calc-dirty-rate', { 'calc-time': calcSec, 'sample-pages': samplePages });
  const deadline = Date.now() + calcSec * 1000 + 30_000;
  await sleep(calcSec * 1000);
  for (;;) {
    const info = await qmp.execute<DirtyRateInfo>('query-dirty-rate');
    if (info.status === 'measured' && info['dirty-rate'] !== undefined) return info['dirty-rate'] * MiB;
    if (Date.now() > deadline) {
      throw new FlexmigError(ErrorCode.AgentFailed, `calc-dirty-rate did not finish within ${calcSec + 30} s (status ${info.status}): QEMU may be overloaded; ask again`);
    }
    await sleep(100);
  }
}

export class DirtyRateSampler {
  private readonly latest = new Map<string, DirtyRateObservation>();
  private readonly inFlight = new Map<string, Promise<DirtyRateObservation>>();
  private timer?: NodeJS.Timeout;
  private readonly log = new Logger('dirty-rate');
  private readonly longSec: number;
  private readonly pagesPerGiB: number;

  constructor(private readonly o: DirtyRateSamplerOptions) {
    this.longSec = Math.max(2, Math.round(o.longSec ?? 4));
    this.pagesPerGiB = Math.min(10_000, Math.max(128, Math.round(o.samplePagesPerGiB ?? 4096)));
    if (o.intervalMs > 0) {
      this.timer = setInterval(() => void this.sampleAll(), o.intervalMs);
      this.timer.unref();
    }
  }

  /** The latest sample, or a new one when asked `fresh`, when there is none or when it is older than `maxAgeMs`. */
  async get(vmId: string, opts: { fresh?: boolean; maxAgeMs?: number } = {}): Promise<DirtyRateObservation> {
    const last = this.latest.get(vmId);
    const young = last && (opts.maxAgeMs === undefined || Date.now() - last.measuredAt.getTime() <= opts.maxAgeMs);
    if (last && young && !opts.fresh) return last;
    return this.sample(vmId);
  }

  /** Takes a sample now (joins one already running for the VM). */
  sample(vmId: string): Promise<DirtyRateObservation> {
    const running = this.inFlight.get(vmId);
    if (running) return running;
    const p = this.measure(vmId).finally(() => this.inFlight.delete(vmId));
    this.inFlight.set(vmId, p);
    return p;
  }

  forget(vmId: string): void {
    this.latest.delete(vmId);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async sampleAll(): Promise<void> {
    for (const id of this.o.vmIds()) {
      if (!this.o.vmOf(id)?.sampleable) continue;
      await this.sample(id).catch((e: unknown) => this.log.warn(`VM ${id}: scheduled dirty-rate sample failed: ${(e as Error).message}`));
    }
  }

  private async measure(vmId: string): Promise<DirtyRateObservation> {
    const vm = this.o.vmOf(vmId);
    if (!vm) throw new FlexmigError(ErrorCode.NotFound, `VM ${vmId} does not run on this host`);
    if (!vm.sampleable) {
      throw new FlexmigError(ErrorCode.Conflict, `VM ${vmId} is migrating or paused: its dirty rate cannot be sampled now (calc-dirty-rate would measure the migration); ask after it`);
    }
    const qmp = await vm.qmp();
    const samplePages = this.pagesPerGiB;
    const started = new Date();
    // read before the windows: page sampling READS its sampled pages, and where guest RAM is backed by
    // transparent huge pages a read of a page the guest never wrote can fault a whole zero-filled 2 MiB page
    // in. Measured on a 6.18 kernel (THP `madvise`, which QEMU asks for): one 1 s window of an idle 256 MiB
    // TCG guest took its resident part from 6 to 170 MiB. Those pages are zeros, which a migration sends as
    // flags, so they are not what a first pass sends. (A later sample of the same VM still reads them.)
    const residentBytes = await vm.residentBytes?.();
    const shortRate = await measureWindow(qmp, 1, samplePages);
    const longRate = await measureWindow(qmp, this.longSec, samplePages);
    const longBytes = longRate * this.longSec;
    const workingSetBytes = Math.min(vm.memoryBytes, Math.max(shortRate, longBytes));
    const obs: DirtyRateObservation = {
      dirtyRateBytesPerSec: shortRate,
      workingSetBytes,
      memoryBytes: vm.memoryBytes,
      ...(residentBytes !== undefined ? { residentBytes } : {}),
      origin: 'calc-dirty-rate',
      measuredAt: started,
      detail:
        `QMP calc-dirty-rate (page-sampling, ${samplePages} pages per GiB): ${(shortRate / MiB).toFixed(1)} MiB/s over 1 s, ` +
        `${(longBytes / MiB).toFixed(1)} MiB distinct over ${this.longSec} s` +
        (residentBytes !== undefined ? `; ${(residentBytes / MiB).toFixed(1)} MiB of ${(vm.memoryBytes / MiB).toFixed(0)} MiB resident (written at least once)` : ''),
    };
    this.latest.set(vmId, obs);
    return obs;
  }
}
