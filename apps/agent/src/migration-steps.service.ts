import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap, Optional } from '@nestjs/common';
import type { Subscription } from '@nats-io/transport-node';
import {
  ErrorCode,
  FenceMigration,
  FlexmigError,
  GetReservation,
  GetStepAttempt,
  type MessageOf,
  MigrationProgressMessage,
  type CompensateCommand,
  type Role,
  isPastPointOfNoReturn,
  stepNumber,
  QueryMigration,
  ReplyOf,
  RequestOf,
  StepCommand,
  StepRecord,
  StepReply,
  ReservationNotice,
} from '@flexmig/contracts';
import { inSpan, NatsBus, noReply, traceCalls } from '@flexmig/messaging';
import { withLogFields } from '@flexmig/service-kit';
import { HypervisorDriver, StreamEndWord } from './drivers/driver';
import { LedgerRecord, ENTRY_STEP, checkSameVm, checkCompensation, checkCopyNeverRan, checkIncomingAddress, checkPrerequisite, checkReservation, checkRoleAndHost, checkTargetResumed, noRegisteredAddress } from './participation';
import { StepLedger } from './step-ledger';
import { type CopyState, fenceAction, fenceActionDone } from './migration-fence';
import { AGENT_ENV, AgentEnv } from './config';
import { HYPERVISOR_DRIVER } from './driver.token';
import { AgentStateStore } from './state-store';
import { LedgerStore } from './ledger-store';
import { Counter, Histogram } from 'prom-client';
import { sleep } from '@flexmig/timing';
import { TargetWatch } from './target-watch';
import { CompensationsInFlight } from './compensations-in-flight';
import { type SourceStreamEndOptions, awaitSourceStreamEnd, sourceStreamEndDefaults } from './source-stream-end';
import { firstToLetGo, SourceWordsAhead } from './source-word-ahead';
import { type HeldReservation, ReservationNotices } from './reservation-notices';

const stepsRun = new Counter({
  name: 'flexmig_agent_steps_total',
  help: 'Saga steps this agent ran, by step, role and outcome (ok, failed, refused: not admitted by the participation checks).',
  labelNames: ['step', 'role', 'outcome'],
});
const stepSeconds = new Histogram({
  name: 'flexmig_agent_step_duration_seconds',
  help: 'How long this agent took for each saga step it ran.',
  labelNames: ['step', 'role'],
  buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
});
const entryChecks = new Counter({
  name: 'flexmig_agent_entry_reservations_total',
  help: "Entry steps' reservation checks, by where the reservation came from: inventory's notice ahead of the step (noticed) or a request to inventory (asked).",
  labelNames: ['from'],
});

export { HYPERVISOR_DRIVER };

/** How often a source checks, during a memory copy, that its target still holds the incoming VM. */
const targetCheckIntervalMs = 1_000;
const targetCheckTimeoutMs = 2_000;
/** The participation checks' requests (inventory, the target agent, the scheduler): a step's own timeout is longer. */
const admissionCheckTimeoutMs = 3_000;

const refuseIf = (e: FlexmigError | undefined): void => {
  if (e) throw e;
};

/** A command the participation checks let through, with what the source's entry step learnt of its target. */
interface Admitted {
  cmd: StepCommand;
  targetLost?: FlexmigError | null;
}

/** Runs the saga's host-local steps through the hypervisor driver; the scheduler decides, the agent acts. */
@Injectable()
export class MigrationStepsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('steps');
  private readonly ledger: StepLedger;
  private readonly driver: HypervisorDriver;
  private readonly compensations = new CompensationsInFlight<{ done: boolean; note?: string }>();
  /** Step 1's reservations inventory told this host of (ReservationNotice), until an entry step takes one. */
  private readonly reservationNotices = new ReservationNotices();
  private noticesSubscription?: Subscription;
  /** How long the target's half of step 6 waits for the source's word (awaitSourceStreamEnd); tests shorten it. */
  sourceStreamEnd: SourceStreamEndOptions = sourceStreamEndDefaults;
  /** The source's word asked as soon as an incoming copy's state loaded here, before step 6 arrives. */
  private readonly wordsAhead: SourceWordsAhead;

  constructor(
    @Inject(HYPERVISOR_DRIVER) driver: HypervisorDriver,
    private readonly bus: NatsBus,
    @Inject(AGENT_ENV) private readonly env: AgentEnv,
    @Optional() private readonly store?: AgentStateStore,
    @Optional() ledgerStore?: LedgerStore,
  ) {
    this.ledger = ledgerStore?.load() ?? new StepLedger();
    // each driver call is a span (`driver.prepareIncoming`, …) inside the step's
    this.driver = traceCalls(driver, 'driver', () => ({ 'flexmig.host_id': this.env.HOST_ID }));
    this.wordsAhead = new SourceWordsAhead(bus, () => this.sourceStreamEnd);
    driver.onIncomingLoaded?.((vmId, migrationId) => this.wordsAhead.loaded(vmId, migrationId));
  }

  /** Runs one step command: a span `agent step <n> <name>` and log lines with the migration's fields. */
  run(cmd: StepCommand): Promise<StepReply> {
    return withLogFields({ migrationId: cmd.migrationId, vmId: cmd.vm.id, hostId: this.env.HOST_ID, step: cmd.step, stepName: cmd.stepName }, () =>
      inSpan(`agent step ${cmd.step} ${cmd.stepName}`, { attributes: this.spanAttributes(cmd.migrationId, cmd.step, cmd.role, { 'flexmig.attempt': cmd.attempt }) }, () => this.runStep(cmd)),
    );
  }

  private spanAttributes(migrationId: string, step: number, role: Role, more: Record<string, string | number> = {}) {
    return { 'flexmig.migration_id': migrationId, 'flexmig.step': step, 'flexmig.role': role, 'flexmig.host_id': this.env.HOST_ID, ...more };
  }

  private runStep(cmd: StepCommand): Promise<StepReply> {
    return this.ledger.run(cmd, async (history) => {
      let admitted: Admitted;
      try {
        admitted = await this.admit(cmd, history);
      } catch (e) {
        stepsRun.inc({ step: cmd.stepName, role: cmd.role, outcome: 'refused' });
        this.log.warn(`migration ${cmd.migrationId}: step ${cmd.step} ${cmd.stepName} (${cmd.role}, attempt ${cmd.attempt}) refused: ${(e as Error).message}`);
        throw e;
      }
      return () => this.runAdmitted(admitted.cmd, admitted.targetLost);
    });
  }

  /**
   * The participation checks (participation.ts): the command is for this host and role; a later step
   * follows this agent's own completed step before it; an entry step matches inventory's reservation
   * (noticed ahead by inventory, else asked); the source streams only to the target host's registered
   * address (which replaces the command's targetAddress); stop-source waits until the target says the VM
   * runs there. Only the entry steps and stop-source may ask anyone: the steps inside the guest's downtime
   * (5-7) check the local ledger only.
   */
  private async admit(cmd: StepCommand, history: readonly LedgerRecord[]): Promise<Admitted> {
    refuseIf(checkRoleAndHost(cmd, this.env.HOST_ID) ?? checkPrerequisite(cmd, history));
    const timeoutMs = admissionCheckTimeoutMs;
    if (cmd.stepName === ENTRY_STEP[cmd.role]) {
      // the reservation, with the target's registered address, as inventory noticed it at step 1 or asked now;
      // the source's entry step is its first copy, which also needs the target to hold the incoming VM: asked
      // at the same time, one round trip (a refusal still comes first; the target's answer counts after it)
      const [held, targetLost] = await Promise.all([this.reservationOf(cmd.migrationId), cmd.role === 'source' ? this.targetLost(cmd) : undefined]);
      refuseIf(checkReservation(cmd, held.reservation));
      if (cmd.role === 'source') {
        const address = held.targetMigrationAddress;
        if (!address) throw noRegisteredAddress(cmd);
        refuseIf(checkIncomingAddress(cmd, address));
        return { cmd: { ...cmd, targetAddress: address }, targetLost: targetLost ?? null };
      }
    }
    if (cmd.role === 'source' && cmd.stepName === 'stop-source') {
      const { steps } = await this.bus.request(QueryMigration, { migrationId: cmd.migrationId }, { params: { hostId: cmd.targetHostId }, timeoutMs });
      refuseIf(checkTargetResumed(cmd, steps));
    }
    return { cmd };
  }

  /** Inventory's notice of the reservation, taken once (no round trip); else inventory's answer to the question. */
  private async reservationOf(migrationId: string): Promise<HeldReservation> {
    const noticed = this.reservationNotices.take(migrationId);
    entryChecks.inc({ from: noticed ? 'noticed' : 'asked' });
    return noticed ?? (await this.bus.request(GetReservation, { migrationId }, { timeoutMs: admissionCheckTimeoutMs }));
  }

  /** Inventory's word of a reservation it made or released for a migration of this host's (`ReservationNotice`). */
  noteReservation(n: MessageOf<typeof ReservationNotice>): void {
    this.reservationNotices.note(n);
  }

  /** Hears inventory's reservation notices on this host's subject (the fleet's hosts call it; the agent's Nest app at bootstrap). */
  listenForReservations(): Subscription {
    return this.bus.subscribe(ReservationNotice, (n) => this.noteReservation(n), { params: { hostId: this.env.HOST_ID } });
  }

  onApplicationBootstrap(): void {
    this.noticesSubscription = this.listenForReservations();
  }

  beforeApplicationShutdown(): void {
    this.noticesSubscription?.unsubscribe();
  }

  /** `targetLost`: what the source's entry step already learnt of its target (null: it holds the incoming VM); undefined: not asked. */
  private async runAdmitted(cmd: StepCommand, targetLost?: FlexmigError | null): Promise<Omit<StepReply, 'repeated' | 'migrationId' | 'step' | 'attempt' | 'finishedAt'>> {
    const t = Date.now();
    try {
      const latency = this.driver.kind === 'sim' ? (this.env.SIM_STEP_LATENCY_MS ?? 0) : 0;
      if (latency > 0) await sleep(latency);
      // the memory copy (3, 4) watches its target; step 6 does not need to: the target's own half of it fails
      // if the target is gone, and a check there would add a round trip to the guest's downtime
      const streams = cmd.stepName === 'transfer-memory' || cmd.stepName === 'sync-memory';
      const out = cmd.role === 'source' && streams ? await this.withTargetWatch(cmd, () => this.execute(cmd), targetLost) : await this.execute(cmd);
      this.log.log(`migration ${cmd.migrationId}: step ${cmd.step} ${cmd.stepName} (${cmd.role}) done in ${Date.now() - t} ms`);
      stepsRun.inc({ step: cmd.stepName, role: cmd.role, outcome: 'ok' });
      stepSeconds.observe({ step: cmd.stepName, role: cmd.role }, (Date.now() - t) / 1000);
      return out;
    } catch (e) {
      stepsRun.inc({ step: cmd.stepName, role: cmd.role, outcome: 'failed' });
      throw e;
    } finally {
      this.store?.save();
    }
  }

  /**
   * A source sends memory only to a target that still holds the incoming VM of this migration (step 2
   * done there). Checked before the first copy and every second while a copy runs: a target agent that
   * died or restarted stops the copy at once, with that reason, and the VM keeps running here.
   */
  private async withTargetWatch<T>(cmd: StepCommand, work: () => Promise<T>, checkedAtAdmission?: FlexmigError | null): Promise<T> {
    // before the first copy (asked with the admission checks); step 4 follows step 3 at once and relies on the periodic check
    if (cmd.stepName === 'transfer-memory') {
      const lost = checkedAtAdmission === undefined ? await this.targetLost(cmd) : checkedAtAdmission;
      if (lost) throw lost;
    }
    const watch = new TargetWatch({ intervalMs: targetCheckIntervalMs, lost: () => this.targetLost(cmd), stop: () => this.driver.cancelTransfer(cmd.vm.id) });
    return watch.around(work);
  }

  private async targetLost(cmd: StepCommand): Promise<FlexmigError | undefined> {
    try {
      const { steps } = await this.bus.request(QueryMigration, { migrationId: cmd.migrationId }, { params: { hostId: cmd.targetHostId }, timeoutMs: targetCheckTimeoutMs });
      if (steps.some((s) => s.step === stepNumber('transfer-config') && s.role === 'target' && s.status === 'completed')) return undefined;
      return new FlexmigError(
        ErrorCode.AgentFailed,
        `target host ${cmd.targetHostId} no longer holds the incoming VM of migration ${cmd.migrationId} (its agent restarted): the copy stopped; the VM keeps running on ${this.env.HOST_ID}`,
        { targetHostId: cmd.targetHostId },
        false,
      );
    } catch (e) {
      if (!noReply(e)) return undefined; // only silence means gone
      // UNAVAILABLE: the saga retries the step for a while (the target's agent may be restarting)
      return new FlexmigError(
        ErrorCode.Unavailable,
        `target host ${cmd.targetHostId} does not answer (${(e as Error).message}): the copy stopped; the VM keeps running on ${this.env.HOST_ID}`,
        { targetHostId: cmd.targetHostId },
        true,
      );
    }
  }

  private async execute(cmd: StepCommand): Promise<Omit<StepReply, 'repeated' | 'migrationId' | 'step' | 'attempt' | 'finishedAt'>> {
    const d = this.driver;
    const progress = (p: Parameters<Parameters<HypervisorDriver['transferMemory']>[1]>[0]) =>
      this.bus.publish(
        MigrationProgressMessage,
        { ...p, migrationId: cmd.migrationId, vmId: cmd.vm.id, hostId: this.env.HOST_ID, step: cmd.step, at: new Date().toISOString() },
        { migrationId: cmd.migrationId, hostId: this.env.HOST_ID },
      );
    switch (cmd.stepName) {
      case 'transfer-config': {
        const prepared = (await d.prepareIncoming(cmd)) ?? {};
        this.wordsAhead.prepared(cmd);
        return prepared;
      }
      case 'transfer-memory': {
        const stats = await d.transferMemory(cmd, progress);
        // the stream reached the switchover inside step 3 (an idle guest's): steps 4 and 5 are done with it (the
        // ledger records all three; participation.ts), and no command of step 4 lies inside the guest's downtime
        if (!d.pausesAtSwitchover || !d.heldAtSwitchover?.(cmd.vm.id, cmd.migrationId)) return { stats };
        return { stats, pausedAt: (await d.pauseSource(cmd.vm.id)).toISOString() };
      }
      case 'sync-memory': {
        const stats = await d.syncMemory(cmd, progress);
        // the guest stopped inside step 4: step 5 is done with it (the ledger records both; participation.ts)
        if (!d.pausesAtSwitchover) return { stats };
        return { stats, pausedAt: (await d.pauseSource(cmd.vm.id)).toISOString() };
      }
      case 'pause-source':
        return { pausedAt: (await d.pauseSource(cmd.vm.id)).toISOString() };
      case 'transfer-state': {
        if (cmd.role === 'source') return { stats: await d.transferState(cmd) };
        if (!d.resumesWithTransferState) {
          await d.confirmIncoming(cmd);
          return {};
        }
        // the state has loaded and the source's copy stays paused: the guest starts here at once, and step 7 is
        // done with step 6 (the ledger records both; participation.ts). No round trip of step 7's own lies inside
        // the guest's downtime.
        const word = await this.loadedAndLetGo(cmd);
        const resumedAt = await d.resumeTarget(cmd.vm.id);
        if (word) this.log.log(`migration ${cmd.migrationId}: the source ${cmd.sourceHostId} let go (${word.status}: ${word.detail})`);
        // after the resume, outside the downtime: what of the guest's memory holds data, as the source knew it
        if (word?.residentBytes !== undefined) d.noteArrival?.(cmd.vm.id, { residentBytes: word.residentBytes });
        return { resumedAt: resumedAt.toISOString() };
      }
      case 'resume-target':
        return { resumedAt: (await d.resumeTarget(cmd.vm.id)).toISOString() };
      case 'stop-source':
        await d.stopSource(cmd.vm.id);
        return {};
      case 'verify-compatibility':
      case 'commit': // refused at admission (checkRoleAndHost), like a role that does not run the step
        throw new FlexmigError(ErrorCode.ValidationFailed, `step ${cmd.stepName} is the scheduler's, not an agent's`);
      default: {
        const never: never = cmd.stepName;
        throw new FlexmigError(ErrorCode.ValidationFailed, `unknown step ${String(never)}`);
      }
    }
  }

  /**
   * Step 6 on a target that starts the guest with it: the state loaded here, and the source's word that its
   * stream completed: the one asked when the state loaded, if the driver heard it before this step and the
   * source let go (source-word-ahead.ts), else asked at once beside the wait for the state
   * (source-stream-end.ts), so that it adds no round trip of its own to the downtime; a question asked ahead
   * and still under way runs beside this one, and the first word that lets go counts. A copy that runs here
   * already (an earlier agent started it) asks nothing.
   */
  private async loadedAndLetGo(cmd: StepCommand): Promise<StreamEndWord | undefined> {
    const stop = new AbortController();
    const ahead = this.wordsAhead.take(cmd.migrationId);
    const stopAsking = (why: string) => {
      stop.abort(why);
      if (ahead && 'pending' in ahead) ahead.stop();
    };
    let letGo: Promise<StreamEndWord>;
    if (ahead && 'word' in ahead) {
      letGo = Promise.resolve(ahead.word);
    } else {
      const asked = awaitSourceStreamEnd(this.bus, cmd, this.sourceStreamEnd, stop.signal);
      // a question asked ahead and still under way: the first of the two that lets go; then neither asks more
      letGo = ahead ? firstToLetGo(ahead.pending, asked) : asked;
      if (ahead) letGo.then(() => stopAsking('step 6 has its word'), () => stopAsking('step 6 has its answer'));
    }
    letGo.catch(() => undefined); // read below, unless the state never loaded
    try {
      await this.driver.confirmIncoming(cmd);
    } catch (e) {
      stopAsking('the state did not load here');
      throw e;
    }
    if (this.copyOf(cmd.vm.id) !== 'running') return letGo;
    stopAsking('the copy here runs already');
    return undefined;
  }

  /** What this host holds of a VM: its driver's state of it, or absent. */
  private copyOf(vmId: string): CopyState {
    return this.driver.listVms().find((v) => v.vmId === vmId)?.state ?? 'absent';
  }

  /**
   * Undoes a step this agent ran, before the point of no return, by the compensation the saga names for it
   * (the contract has checked that the name is the one for this step and role). Idempotent. A span
   * `agent compensate <n>`.
   */
  compensate(c: CompensateCommand): Promise<{ done: boolean; note?: string }> {
    // one sent again while it runs (CompensationsInFlight) joins it
    return this.compensations.run(c, () =>
      withLogFields({ migrationId: c.migrationId, vmId: c.vmId, hostId: this.env.HOST_ID, step: c.step }, () =>
        inSpan(`agent compensate ${c.step}`, { attributes: this.spanAttributes(c.migrationId, c.step, c.role) }, () => this.undo(c)),
      ),
    );
  }

  private async undo(c: CompensateCommand): Promise<{ done: boolean; note?: string }> {
    if (isPastPointOfNoReturn(c.stepName)) {
      throw new FlexmigError(ErrorCode.Conflict, `${c.stepName} is at or past the point of no return (resume-target): it is never undone`);
    }
    const closed = this.ledger.closedAs(c.migrationId);
    if (closed) {
      throw new FlexmigError(ErrorCode.Conflict, `migration ${c.migrationId} was resolved by an operator (this host's copy ${closed === 'keep' ? 'is the VM' : 'is fenced'}): nothing of it is undone here`, { migrationId: c.migrationId }, false);
    }
    // only a step this agent ran, for that VM: a compensation destroys or resumes a guest; never one that ran here
    const history = this.ledger.history(c.migrationId);
    refuseIf(checkCompensation(c, history) ?? checkCopyNeverRan(c, history, this.copyOf(c.vmId)));
    const d = this.driver;
    let note: string;
    switch (c.compensation) {
      case 'destroy-incoming-vm':
        this.wordsAhead.forget(c.migrationId);
        await d.destroyIncoming(c.vmId);
        note = c.stepName === 'transfer-config' ? 'incoming VM destroyed' : 'target copy destroyed';
        break;
      case 'cancel-stream':
        await d.cancelTransfer(c.vmId);
        note = 'memory stream cancelled; the VM runs on the source';
        break;
      case 'resume-source':
        await d.resumeSource(c.vmId);
        note = 'VM resumed on the source';
        break;
      default: {
        const never: never = c.compensation;
        throw new FlexmigError(ErrorCode.ValidationFailed, `unknown compensation ${String(never)}`);
      }
    }
    this.ledger.markCompensated(c.migrationId, c.step, c.role);
    this.store?.save();
    this.log.log(`migration ${c.migrationId}: compensated ${c.stepName} (${c.role}) by ${c.compensation}: ${note}`);
    return { done: true, note };
  }

  /**
   * An operator resolved the migration (the scheduler sends this to both hosts): the ledger records it
   * first, on disk, so that no later step or compensation of it runs here; then this host's copy is kept
   * (resumed if paused and asked to) or fenced (paused, or destroyed only if it is an incoming copy that
   * never ran): migration-fence.ts. Refused while a step of the migration is running here, and for a VM
   * other than the one this agent's records of the migration are for.
   */
  async fence(r: RequestOf<typeof FenceMigration>): Promise<ReplyOf<typeof FenceMigration>> {
    const history = this.ledger.history(r.migrationId);
    refuseIf(checkSameVm(r.migrationId, r.vmId, history));
    const busy = history.find((h) => h.record.status === 'in-progress');
    if (busy) {
      throw new FlexmigError(ErrorCode.Conflict, `step ${busy.record.step} of migration ${r.migrationId} is running on ${this.env.HOST_ID}: resolve again once it has ended`, { migrationId: r.migrationId, step: busy.record.step }, true);
    }
    const before = this.copyOf(r.vmId);
    const action = fenceAction(r.outcome, before, r.resume, r.vmId);
    if (action instanceof FlexmigError) throw action;
    this.ledger.close(r.migrationId, r.outcome);
    switch (action) {
      case 'pause':
        await this.driver.pauseVm(r.vmId);
        break;
      case 'destroy':
        await this.driver.destroyIncoming(r.vmId);
        break;
      case 'resume':
        if (r.role === 'source') await this.driver.resumeSource(r.vmId);
        else await this.driver.resumeTarget(r.vmId);
        break;
      case 'none':
        break;
    }
    this.store?.save();
    const after = this.copyOf(r.vmId);
    const note = `migration ${r.migrationId} resolved: this host's copy (${before}) is ${r.outcome === 'keep' ? 'the VM' : 'fenced'}${action === 'none' ? '' : `, ${fenceActionDone[action]}`} (${r.reason})`;
    this.log.warn(note);
    return { migrationId: r.migrationId, vmId: r.vmId, before, after, action: fenceActionDone[action], note };
  }

  /**
   * What this agent knows of a migration. With a step and attempt it has no record of, it fences that
   * attempt, once the scheduler confirms it issued it (StepLedger.query).
   */
  async records(migrationId: string, step?: number, attempt?: number): Promise<StepRecord[]> {
    const records = await this.ledger.query(
      migrationId,
      async (id, n) => (await this.bus.request(GetStepAttempt, { migrationId: id, step: n }, { timeoutMs: admissionCheckTimeoutMs })).attempt,
      step,
      attempt,
    );
    return this.compensations.mark(migrationId, records);
  }
}
