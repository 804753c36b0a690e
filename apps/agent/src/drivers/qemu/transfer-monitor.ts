/**
 * Follows a migration stream on the source (steps 3 and 4): query-migrate on QEMU's events and every
 * ≤ 500 ms, pass samples for the convergence policy (`decideConvergence`, shared with the sim driver),
 * a stall watchdog (QEMU never notices a destination that stops reading), progress reports, and the
 * clean-up of a stream that failed or was cancelled (the guest keeps running on the source).
 */
import { Logger } from '@nestjs/common';
import { ErrorCode, FlexmigError, MigrationPolicy as WirePolicy, StreamEnd, TransferStats } from '@flexmig/contracts';
import { BYTES_PER_MIB, type MigrationPolicy as ModelPolicy, type PassSample, decideConvergence } from '@flexmig/migration-model';
import { sleep } from '@flexmig/timing';
import { ProgressSink } from '../driver';
import { ConvergenceFailureCode, type ConvergenceFailureFacts, convergenceFailure, leverLeft, noLeverReason, passesNotConverging, transferCancelled } from '../precopy-policy';
import { FINAL, MigrateInfo } from './migrate-info';
import { QemuProcess, waitAtMost } from './qemu-process';
import { QmpEvent } from './qmp-client';
import {
  DEFAULT_SWITCHOVER_TUNING,
  QEMU_MIN_DOWNTIME_LIMIT_MS,
  RateSample,
  SwitchoverTuning,
  expectedSwitchoverMs,
  qemuDowntimeLimitMs,
  qemuFigureBound,
  qemuPeakBandwidth,
  qemuSwitchesOverNext,
  realBandwidth,
  streamCapBytesPerSec,
  switchoverFits,
} from './switchover-decision';
import type { Vm, VmObserver } from './vm-registry';

/** `switching`: the guest stopped at pre-switchover and the final copy was started (startSwitchover). */
export type TransferStatus = 'running' | 'switching' | 'completed' | 'failed' | 'cancelled';

export interface Transfer {
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
  /** The policy's downtime limit now (its downtime steps may raise it). */
  downtimeLimitMs: number;
  /** The `downtime-limit` QEMU has now: the policy's, rescaled to the agent's own bandwidth (switchover-decision.ts). */
  qemuLimitMs: number;
  /** The `max-bandwidth` the agent holds the stream to (streamCapBytesPerSec); undefined until it set one (the policy's cap, if any, holds until then). */
  streamCapBytesPerSec?: number;
  /** The agent's own samples of `ram.transferred`, the last few seconds. */
  rates: RateSample[];
  /** What the agent knew when QEMU stopped the guest at pre-switchover. */
  switchover?: SwitchoverRecord;
  /** The final copy, started at once at pre-switchover (the guest is stopped there): its last query-migrate. */
  switched?: Promise<MigrateInfo>;
  /** QEMU said the stream completed (its MIGRATION event or query-migrate), before `switched` has the figures. */
  completedSeen?: boolean;
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
  /** What of the guest's memory held data when the stream started (QemuDriver.residentOf), once read. */
  residentBytes?: number;
}

/** The switchover as the agent saw it: its estimate when the guest stopped, beside the policy's limit. */
export interface SwitchoverRecord {
  remainingBytes: number;
  /** The agent's bandwidth then (bytes/s), undefined if the stream was too short to measure (the estimate is then at QEMU's figure). */
  realBytesPerSec?: number;
  /** QEMU's own bandwidth figure then (bytes/s). */
  qemuBytesPerSec: number;
  expectedDowntimeMs: number;
  limitMs: number;
  qemuLimitMs: number;
  /** The cap the agent held the stream to then (bytes/s), if it had set one. */
  streamCapBytesPerSec?: number;
  fits: boolean;
}

export interface TransferMonitorOptions {
  /** QMP polling period while a migration runs (20–500 ms). */
  pollMs: number;
  /** Fail a stream whose `transferred` does not move for this long (QEMU never notices a destination that stops reading). */
  stallTimeoutMs?: number;
  /** Give up without a lever after this many passes in a row that did not converge (default 8). */
  notConvergingPasses?: number;
  /** The live QMP connection of a VM (the registry's, re-attaching after an agent restart). */
  procOf(vm: Vm): Promise<QemuProcess>;
  /** The switchover decision's figures (switchover-decision.ts). */
  switchover?: Partial<SwitchoverTuning>;
}

/** How long the agent keeps its own transferred-bytes samples. */
const RATE_HISTORY_MS = 5_000;

const mbpsToBytes = (mbps: number | undefined): number => ((mbps ?? 0) * 1e6) / 8;

/** How fast the guest dirties memory, bytes/s: `dirty-pages-rate` (pages/s) × the page size (4 KiB when QEMU does not say); 0 without stats. */
const dirtyBytesPerSec = (ram: MigrateInfo['ram']): number => (ram?.['dirty-pages-rate'] ?? 0) * (ram?.['page-size'] || 4096);

/** The states in which the stream moves RAM: its rate is sampled in these only. */
const STREAMING = new Set(['active', 'postcopy-active']);
/** The states of a precopy stream under way on the source: a restarted agent cancels one it does not drive. */
const ORPHAN_CANCELLABLE = new Set(['setup', 'active', 'pre-switchover', 'device']);

export class TransferMonitor implements VmObserver {
  private readonly log = new Logger('qemu');
  readonly tuning: SwitchoverTuning;

  constructor(private readonly o: TransferMonitorOptions) {
    this.tuning = { ...DEFAULT_SWITCHOVER_TUNING, ...o.switchover };
  }

  /** A transfer about to start (before `migrate`), recorded on its VM. */
  begin(vm: Vm, s: { migrationId: string; uri: string; wire: WirePolicy; policy: ModelPolicy; sink: ProgressSink }): Transfer {
    const now = Date.now();
    const t: Transfer = {
      migrationId: s.migrationId,
      uri: s.uri,
      wire: s.wire,
      policy: s.policy,
      startedAt: now,
      status: 'running',
      history: [],
      syncCount: 0,
      syncAt: now,
      syncTransferred: 0,
      transferred: 0,
      transferredAt: now,
      downtimeLimitMs: s.wire.downtimeLimitMs,
      qemuLimitMs: QEMU_MIN_DOWNTIME_LIMIT_MS,
      rates: [],
      sink: s.sink,
      polling: false,
      pollAgain: false,
      waiters: new Set(),
      postcopy: false,
    };
    vm.transfer = t;
    return t;
  }

  /** Starts following a stream that `migrate` just started. */
  follow(vm: Vm, t: Transfer): void {
    t.timer = setInterval(() => void this.poll(vm, t), this.o.pollMs);
    void this.poll(vm, t);
  }

  onEvent(vm: Vm, e: QmpEvent): void {
    if (e.event === 'STOP') {
      if (vm.transfer?.status === 'running') vm.transfer.stoppedAt = e.at;
    } else if (e.event === 'MIGRATION' && e.data?.status === 'pre-switchover' && vm.transfer?.status === 'running' && vm.proc) {
      // straight from the event, with no query-migrate before it: every millisecond from here is downtime
      this.startSwitchover(vm, vm.transfer, vm.proc);
    } else if ((e.event === 'MIGRATION' || e.event === 'MIGRATION_PASS') && vm.transfer) {
      void this.poll(vm, vm.transfer);
    }
  }

  /**
   * QEMU stopped the guest at pre-switchover: every millisecond from here is downtime, so the final copy
   * starts now, from QEMU's MIGRATION event (or the poll that saw the state first, if the event was lost),
   * not when step 6 arrives. The target stays paused (-S) until its half of step 6 arrived and this agent
   * said the stream completed (streamEnd); until then the saga can still resume the guest here
   * (abortStream with evenIfCompleted, after the target's copy is destroyed), so nothing is decided by this.
   * `seen`: the query-migrate that saw the state, if a poll did.
   */
  private startSwitchover(vm: Vm, t: Transfer, proc: QemuProcess, seen?: MigrateInfo): void {
    t.stoppedAt ??= vm.lastStop ?? new Date();
    this.stop(t);
    t.switched = this.switchOver(vm, t, proc, seen);
    t.switched.catch(() => undefined); // its failure is the transfer's (end), read by steps 5 and 6
  }

  /**
   * A QEMU attached after an agent restart may still stream this VM's memory, started by the agent
   * before (the process outlives the agent): it copies on by itself, and with pause-before-switchover it
   * stops the guest at `pre-switchover` and waits there for good. A stream no one drives is cancelled
   * and the guest runs on the source again, unless step 5 ran (`sourcePausedAt`): from then on only the
   * saga resumes it (compensation of step 5 or 6), or the target takes it over (step 7). A post-copy
   * stream is left alone: the target runs that guest already.
   */
  async onAttach(vm: Vm, proc: QemuProcess): Promise<void> {
    await this.cancelOrphan(vm, proc).catch((e: unknown) => this.log.error(`VM ${vm.state.vmId}: cannot settle its migration stream: ${(e as Error).message}`));
  }

  /**
   * Cancels a precopy stream of this VM that no transfer of this agent follows (see onAttach). Only a
   * source's: an incoming VM's stream is the source's to drive, and its guest stays paused until step 7
   * resumes it or the saga destroys it. (Taken for a source, an incoming VM whose state had arrived was
   * resumed here, beside a source the saga could still resume: two running copies; and step 7 then waited
   * for a RESUME that never came. Fault matrix: qemu:kill-target-agent@resume-target.)
   */
  async cancelOrphan(vm: Vm, proc: QemuProcess): Promise<void> {
    if (vm.state.role !== 'vm') return;
    const t = vm.transfer;
    if (t && (t.status === 'running' || t.status === 'switching')) return; // driven
    let info = await proc.qmp.execute<MigrateInfo>('query-migrate');
    // a final copy under way (it starts at pre-switchover) ends in moments: settle what it ends as
    for (let i = 0; i < 500 && info.status === 'device'; i++) {
      await sleep(10);
      info = await proc.qmp.execute<MigrateInfo>('query-migrate');
    }
    if (info.status === 'completed' && vm.state.migrationId && !vm.state.sourcePausedAt) {
      // the final copy ran (it starts at pre-switchover) but step 5 never did: step 7 cannot have been sent,
      // so the guest runs here again and the target copy stays paused until the saga destroys it
      this.log.warn(`VM ${vm.state.vmId}: its migration ${vm.state.migrationId} completed before step 5 and is no longer followed (the agent restarted): the VM runs on the source again`);
      await this.abortStreamOn(vm, proc, true);
      vm.state.migrationId = undefined;
      return;
    }
    if (!ORPHAN_CANCELLABLE.has(info.status)) return;
    if (vm.state.sourcePausedAt) {
      this.log.warn(`VM ${vm.state.vmId}: its migration ${vm.state.migrationId ?? ''} is ${info.status} and step 5 ran (paused at ${vm.state.sourcePausedAt}): left as it is for the saga`);
      return;
    }
    this.log.warn(`VM ${vm.state.vmId}: its migration stream ${vm.state.migrationId ?? ''} is ${info.status} and no longer followed (the agent restarted): cancelled, the VM runs on the source`);
    await this.abortStreamOn(vm, proc);
    vm.state.migrationId = undefined;
  }

  onExit(vm: Vm, end: string): void {
    const t = vm.transfer;
    if (t && !t.failure && t.status !== 'completed') {
      this.end(vm, t, 'failed', new FlexmigError(ErrorCode.AgentFailed, `VM ${vm.state.vmId}: its QEMU ended during the migration: ${end}`), false);
    }
  }

  /**
   * Whether the guest is idle enough that QEMU stops it at its next iteration whatever limit the agent hands it:
   * by QEMU's own test on the last sample (switchover-decision.ts `qemuSwitchesOverNext`), what is left fits
   * even the smallest limit. A guest still writing its memory is not waited for: it switches over when the agent
   * has measured its stream (step 4).
   */
  switchoverDue(t: Transfer): boolean {
    const ram = t.last?.ram;
    return ram !== undefined && t.last?.status === 'active' && qemuSwitchesOverNext(ram.remaining, mbpsToBytes(ram.mbps), QEMU_MIN_DOWNTIME_LIMIT_MS);
  }

  /** Waits up to `maxMs` for the guest to stop at pre-switchover; whether it did. Never throws: a failure is the next step's to report. */
  async reachesSwitchover(t: Transfer, maxMs: number): Promise<boolean> {
    const deadline = Date.now() + maxMs;
    while (!this.atSwitchover(t) && !t.failure && Date.now() < deadline) await this.nextChange(t, deadline - Date.now());
    return this.atSwitchover(t);
  }

  /** The guest has stopped at pre-switchover and the final copy runs or ran, its figures at the stop recorded (`switchover`). */
  atSwitchover(t: Transfer): boolean {
    return t.switchover !== undefined && (t.status === 'switching' || t.status === 'completed');
  }

  private completed(t: Transfer): void {
    if (t.completedSeen) return;
    t.completedSeen = true;
    this.wake(t);
  }

  /**
   * How this transfer's stream ended (HypervisorDriver.streamEnd), waiting up to `waitMs` for its end.
   * `completed` once QEMU said so: the source is then `postmigrate` and QEMU resumes it on no failure of its own.
   */
  async streamEnd(vm: Vm, t: Transfer, waitMs: number): Promise<{ status: StreamEnd; detail: string }> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if ((t.completedSeen || t.status === 'completed') && vm.running) return { status: 'failed', detail: `the stream of VM ${vm.state.vmId} completed, but its copy here runs again (the rollback resumed it)` };
      if (t.completedSeen || t.status === 'completed') return { status: 'completed', detail: `the stream of VM ${vm.state.vmId} to ${t.uri} completed; its copy here stays paused` };
      if (t.failure) return { status: 'failed', detail: `the stream of VM ${vm.state.vmId} ${t.status}: ${t.failure.message}` };
      const left = deadline - Date.now();
      if (left <= 0) return { status: 'active', detail: `the stream of VM ${vm.state.vmId} to ${t.uri} is ${t.status}` };
      await this.nextChange(t, left);
    }
  }

  /** Waits until `done()` holds; throws the transfer's failure (after its clean-up) if it failed first. */
  async until(t: Transfer, done: () => boolean): Promise<void> {
    for (;;) {
      if (t.failure) {
        await t.settled;
        throw t.failure;
      }
      if (done()) return;
      await this.nextChange(t);
    }
  }

  /** Resolves at the transfer's next change (wake), or after two polls (a missed wake costs no more), or `maxMs`. */
  private nextChange(t: Transfer, maxMs = Infinity): Promise<void> {
    return new Promise<void>((r) => {
      t.waiters.add(r);
      setTimeout(r, Math.min(maxMs, this.o.pollMs * 2)).unref();
    });
  }

  private wake(t: Transfer): void {
    const ws = [...t.waiters];
    t.waiters.clear();
    for (const w of ws) w();
  }

  /** Stops polling (the transfer's record stays). */
  stop(t: Transfer): void {
    if (t.timer) clearInterval(t.timer);
    t.timer = undefined;
  }

  /** One look at query-migrate: pass samples, policy, watchdog, progress. Coalesced: never two at once. */
  private async poll(vm: Vm, t: Transfer): Promise<void> {
    if (t.polling) {
      t.pollAgain = true;
      return;
    }
    if (t.status !== 'running') return;
    t.polling = true;
    try {
      do {
        t.pollAgain = false;
        await this.pollOnce(vm, t);
      } while (t.pollAgain && t.status === 'running');
    } catch (e) {
      if (t.status === 'running') this.fail(vm, t, new FlexmigError(ErrorCode.AgentFailed, `following the migration of VM ${vm.state.vmId} failed: ${(e as Error).message}`));
    } finally {
      t.polling = false;
      this.wake(t);
    }
  }

  private async pollOnce(vm: Vm, t: Transfer): Promise<void> {
    const proc = vm.proc;
    if (!proc) throw new FlexmigError(ErrorCode.Unavailable, 'the source QEMU is gone');
    const info = await proc.qmp.execute<MigrateInfo>('query-migrate', undefined, 10_000);
    if (t.status !== 'running') return;
    const now = Date.now();
    this.ingest(t, info, now);
    this.report(t);
    switch (info.status) {
      case 'pre-switchover':
        // its MIGRATION event was lost, or came while this query was under way
        this.startSwitchover(vm, t, proc, info);
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
        // the policy's own lever: the budget grows; QEMU's limit follows it through retune
        t.downtimeLimitMs = d.downtimeLimitMs;
        await this.retune(proc, t);
        return;
      case 'switch-to-postcopy':
        t.postcopy = true;
        await proc.qmp.execute('migrate-start-postcopy');
        return;
      case 'throttle': // QEMU's auto-converge applies the same rule itself (capability on per the policy)
      case 'continue':
        break;
    }
    await this.retune(proc, t);
    // QEMU may have stopped the guest for the switchover meanwhile (its event starts it): nothing left to judge
    if (t.status !== 'running') return;
    // no lever left: fail instead of waiting for the completion timeout
    const throttle = info['cpu-throttle-percentage'] ?? 0;
    const hits = passesNotConverging(t.history, t.policy);
    if (!leverLeft(t.policy, throttle, t.downtimeLimitMs) && hits >= (this.o.notConvergingPasses ?? 8)) {
      const reason = noLeverReason(`${hits} passes in a row re-dirtied more than ${t.policy.throttleTriggerThresholdPct}% of what they sent`, t.policy, throttle);
      this.fail(vm, t, this.convergenceError(vm, t, ConvergenceFailureCode.NotConverging, reason, elapsed));
    }
  }

  /** One query-migrate's figures into the transfer: the last sample, the agent's own rate samples, a pass that ended. */
  private ingest(t: Transfer, info: MigrateInfo, now: number): void {
    if (info.ram) {
      t.last = info;
      const ram = info.ram;
      if (ram.transferred !== t.transferred) {
        t.transferred = ram.transferred;
        t.transferredAt = now;
      }
      // the stream's rate while it streams: at pre-switchover it has stood still since QEMU stopped the
      // guest, for as long as this sample took to come, and that wait would lower the rate the switchover
      // is judged on (recordSwitchover) and the link a prediction learns (stats)
      if (STREAMING.has(info.status)) t.rates.push({ atMs: now, transferred: ram.transferred, qemuBytesPerSec: mbpsToBytes(ram.mbps) });
      while (t.rates.length > 2 && now - t.rates[0]!.atMs > RATE_HISTORY_MS) t.rates.shift();
      // dirty-sync-count n ≥ 2 means pass n-1 just ended (sync 1 starts pass 1)
      if (ram['dirty-sync-count'] > t.syncCount) {
        if (ram['dirty-sync-count'] >= 2) {
          const bw = mbpsToBytes(ram.mbps);
          t.history.push({
            pass: ram['dirty-sync-count'] - 1,
            startMs: t.syncAt - t.startedAt,
            endMs: now - t.startedAt,
            bytesSent: Math.max(0, ram.transferred - t.syncTransferred),
            remainingBytes: ram.remaining,
            dirtyRateBytesPerSec: dirtyBytesPerSec(ram),
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
  }

  /**
   * Hands QEMU the stream cap that bounds its own bandwidth figure (streamCapBytesPerSec) and the
   * downtime-limit that, at any figure up to that bound, makes its switchover test the agent's
   * (qemuDowntimeLimitMs): QEMU then switches over at its next fresh sync only when what is left fits the
   * policy's limit at the bandwidth the agent measured. Both go in one call (a higher cap comes with the
   * stricter limit it needs), sent only when one of them changes.
   */
  private async retune(proc: QemuProcess, t: Transfer): Promise<void> {
    const cap = streamCapBytesPerSec(
      {
        currentBytesPerSec: t.streamCapBytesPerSec,
        policyBytesPerSec: t.wire.bandwidthMiBps ? t.wire.bandwidthMiBps * BYTES_PER_MIB : undefined,
        fullWindowBytesPerSec: realBandwidth(t.rates, { windowMs: this.tuning.windowMs, minWindowMs: this.tuning.windowMs }),
      },
      this.tuning,
    );
    const dirty = dirtyBytesPerSec(t.last?.ram);
    const qemuLimitMs = qemuDowntimeLimitMs(
      {
        limitMs: t.downtimeLimitMs,
        // the rate counts once the stream has run a full window, and with it the cap that bounds QEMU's
        // figure: its first windows jump most (zero pages, the socket buffer filling), and a limit scaled
        // by the highest seen so far let a dirtying guest through that did not fit
        realBytesPerSec: cap === undefined ? undefined : realBandwidth(t.rates, this.tuning),
        qemuPeakBytesPerSec: qemuFigureBound(qemuPeakBandwidth(t.rates, RATE_HISTORY_MS), cap),
        // QEMU's figure of its last sync period (auto-converge's throttle lowers it). QEMU 7.2 leaves it at 0
        // until two of its syncs lie a second apart; a guest that dirties nothing switches over at the
        // smallest limit anyway (nothing left to send)
        dirtyBytesPerSec: dirty > 0 ? dirty : undefined,
      },
      this.tuning,
    );
    if (qemuLimitMs === t.qemuLimitMs && cap === t.streamCapBytesPerSec) return;
    await proc.qmp.execute('migrate-set-parameters', {
      'downtime-limit': qemuLimitMs,
      ...(cap !== undefined && cap !== t.streamCapBytesPerSec ? { 'max-bandwidth': cap } : {}),
    });
    t.qemuLimitMs = qemuLimitMs;
    t.streamCapBytesPerSec = cap;
  }

  /** What the agent expected when QEMU stopped the guest: `remaining` is then what the final copy sends. */
  private recordSwitchover(t: Transfer, info: MigrateInfo): SwitchoverRecord {
    const remainingBytes = info.ram?.remaining ?? 0;
    const realBytesPerSec = realBandwidth(t.rates, this.tuning);
    const qemuBytesPerSec = mbpsToBytes(info.ram?.mbps);
    // a stream too short for the agent to measure (an idle guest: QEMU had it under the 1 ms limit) is
    // judged at QEMU's own figure, the only one there is
    const judgedAt = realBytesPerSec ?? (qemuBytesPerSec > 0 ? qemuBytesPerSec : undefined);
    const r: SwitchoverRecord = {
      remainingBytes,
      ...(realBytesPerSec !== undefined ? { realBytesPerSec } : {}),
      qemuBytesPerSec,
      expectedDowntimeMs: remainingBytes > 0 ? expectedSwitchoverMs(remainingBytes, judgedAt ?? 0, this.tuning) : this.tuning.reserveMs,
      limitMs: t.downtimeLimitMs,
      qemuLimitMs: t.qemuLimitMs,
      ...(t.streamCapBytesPerSec !== undefined ? { streamCapBytesPerSec: t.streamCapBytesPerSec } : {}),
      fits: switchoverFits(remainingBytes, judgedAt, t.downtimeLimitMs, this.tuning),
    };
    const mib = (b: number) => (b / 1048576).toFixed(1);
    this.log.log(
      `migration ${t.migrationId}: switchover with ${mib(remainingBytes)} MiB left at ${r.realBytesPerSec ? `${mib(r.realBytesPerSec)} MiB/s measured` : 'a rate not measured yet'} (QEMU: ${mib(r.qemuBytesPerSec)} MiB/s, ` +
        `capped at ${t.streamCapBytesPerSec !== undefined ? `${mib(t.streamCapBytesPerSec)} MiB/s` : 'nothing yet'}, its limit ${t.qemuLimitMs} ms): ` +
        `expected ${Math.round(r.expectedDowntimeMs)} ms against ${t.downtimeLimitMs} ms${r.fits ? '' : ' (does NOT fit: QEMU switched over on an older figure)'}`,
    );
    return r;
  }

  /**
   * The final copy: migrate-continue at pre-switchover, then wait for QEMU's final state (its MIGRATION
   * event, or a poll every 100 ms if one is lost; an event that arrives during a query is remembered).
   * Resolves with the last query-migrate once `completed` carries its figures (the 7.2 race, reference §1);
   * a stream that failed ends the transfer (the guest runs on the source again) and rejects.
   */
  private async switchOver(vm: Vm, t: Transfer, proc: QemuProcess, seen?: MigrateInfo): Promise<MigrateInfo> {
    t.status = 'switching';
    let finalSeen = false;
    let wakeUp: () => void = () => undefined;
    const onEvent = (e: QmpEvent) => {
      if (e.event === 'MIGRATION' && FINAL.has(String(e.data?.status))) {
        finalSeen = true;
        // the target's agent waits for this to start the guest (streamEnd): told at once, not after the figures
        if (e.data?.status === 'completed') this.completed(t);
        wakeUp();
      }
    };
    proc.qmp.on('event', onEvent);
    let info: MigrateInfo;
    try {
      // the figures as the guest stopped, unless a poll has them: asked together with migrate-continue and answered
      // before it (QMP takes a connection's commands in order), as the final copy then holds QEMU's lock and leaves
      // nothing to read; the guest waits on no answer of QEMU's
      const [stopped] = await Promise.all([seen ?? proc.qmp.execute<MigrateInfo>('query-migrate'), proc.qmp.execute('migrate-continue', { state: 'pre-switchover' })]);
      if (!seen) {
        this.ingest(t, stopped, Date.now());
        this.report(t);
      }
      t.switchover = this.recordSwitchover(t, stopped);
      this.wake(t); // steps 3 and 4 end here (atSwitchover)
      for (;;) {
        info = await proc.qmp.execute<MigrateInfo>('query-migrate');
        if (FINAL.has(info.status)) {
          if (info.status === 'completed') this.completed(t);
          break;
        }
        if (!finalSeen) await waitAtMost(new Promise<void>((r) => (wakeUp = r)), 100);
        finalSeen = false;
      }
      // QEMU 7.2 sets `completed` before total-time/downtime are filled in: re-query until they are
      for (let i = 0; i < 200 && info.status === 'completed' && !(info['total-time']! > 0); i++) {
        await sleep(2);
        info = await proc.qmp.execute<MigrateInfo>('query-migrate');
      }
    } catch (e) {
      const err = new FlexmigError(ErrorCode.AgentFailed, `the switchover of VM ${vm.state.vmId} (migration ${t.migrationId}) lost its QEMU: ${(e as Error).message}`);
      if (t.status === 'switching') this.end(vm, t, 'failed', err, true);
      throw err;
    } finally {
      proc.qmp.off('event', onEvent);
    }
    if (info.status !== 'completed') {
      const err = new FlexmigError(
        ErrorCode.AgentFailed,
        `the switchover of VM ${vm.state.vmId} (migration ${t.migrationId}) ${info.status}: ${info['error-desc'] || 'the target did not load the state (its QEMU log has the reason)'}; the VM keeps running on the source`,
      );
      if (t.status === 'switching') this.end(vm, t, 'failed', err, true);
      throw err;
    }
    if (t.status === 'switching') {
      t.status = 'completed';
      vm.running = false;
    }
    return info;
  }

  /** The policy gave up (or the driver did, without a lever): the shared error with QEMU's figures. */
  private convergenceError(vm: Vm, t: Transfer, code: ConvergenceFailureFacts['code'], reason: string, elapsedMs: number): FlexmigError {
    const ram = t.last?.ram;
    return convergenceFailure({
      vmId: vm.state.vmId,
      migrationId: t.migrationId,
      code,
      reason,
      figures: {
        kind: 'measured',
        dirtyRateBytesPerSec: dirtyBytesPerSec(ram),
        bandwidthBytesPerSec: mbpsToBytes(ram?.mbps),
        expectedDowntimeMs: t.history.at(-1)?.expectedDowntimeMs ?? 0,
      },
      policy: t.policy,
      passes: t.history.length,
      elapsedMs,
      remainingBytes: ram?.remaining ?? 0,
      throttlePct: t.last?.['cpu-throttle-percentage'] ?? 0,
      downtimeLimitMs: t.downtimeLimitMs,
    });
  }

  /** The first failure wins: the stream is cancelled and the guest kept running on the source. */
  private fail(vm: Vm, t: Transfer, err: FlexmigError): void {
    if (t.failure) return;
    this.end(vm, t, err.details?.code === ConvergenceFailureCode.Cancelled ? 'cancelled' : 'failed', err, true);
  }

  /**
   * Ends a transfer with `err`, which its waiters then throw. With `abort`, the stream is cancelled and
   * the guest made to run on the source; `t.settled` resolves when that is done.
   */
  end(vm: Vm, t: Transfer, status: 'failed' | 'cancelled', err: FlexmigError, abort: boolean): void {
    t.status = status;
    t.failure = err;
    this.stop(t);
    // A stream that completed is left as it is: the target may start the guest once it has loaded the state and
    // heard so (streamEnd, asked before this failure), so only the saga's rollback, after it destroyed the
    // target's copy, resumes the guest here (resumeSource). One still under way is cancelled: QEMU resumes it.
    if (abort) t.settled = this.abortStream(vm);
    this.wake(t);
  }

  /**
   * migrate_cancel (if a stream runs), wait until QEMU is done with it, and make sure the guest runs on
   * the source. `evenIfCompleted`: resumeSource after step 6 (the saga never asks after step 7).
   */
  async abortStream(vm: Vm, evenIfCompleted = false): Promise<void> {
    let proc: QemuProcess;
    try {
      proc = await this.o.procOf(vm);
    } catch {
      return; // the source QEMU itself is gone: nothing to resume (the error says so)
    }
    await this.abortStreamOn(vm, proc, evenIfCompleted);
  }

  private async abortStreamOn(vm: Vm, proc: QemuProcess, evenIfCompleted = false): Promise<void> {
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

  report(t: Transfer): void {
    const info = t.last;
    const ram = info?.ram;
    if (!t.sink || !ram) return;
    const bw = mbpsToBytes(ram.mbps);
    try {
      t.sink({
        pass: Math.max(1, ram['dirty-sync-count']),
        percent: ram.total > 0 ? Math.max(0, Math.min(100, (100 * (ram.total - ram.remaining)) / ram.total)) : 0,
        totalBytes: ram.total,
        transferredBytes: ram.transferred,
        remainingBytes: ram.remaining,
        dirtyRateBytesPerSec: dirtyBytesPerSec(ram),
        bandwidthBytesPerSec: bw,
        expectedDowntimeMs: info['expected-downtime'] ?? 0,
        throttlePct: info['cpu-throttle-percentage'] ?? 0,
      });
    } catch {
      // progress is lossy
    }
  }

  stats(t: Transfer): TransferStats {
    const ram = t.last?.ram;
    // over all the samples kept (the last RATE_HISTORY_MS): what a prediction learns the link from
    const bandwidth = realBandwidth(t.rates, { windowMs: RATE_HISTORY_MS, minWindowMs: this.tuning.minWindowMs });
    return {
      passes: t.history.length,
      bytesTransferred: ram?.transferred ?? 0,
      remainingBytes: ram?.remaining ?? 0,
      throttlePct: t.last?.['cpu-throttle-percentage'] ?? 0,
      ...(bandwidth !== undefined ? { bandwidthBytesPerSec: bandwidth } : {}),
    };
  }
}
