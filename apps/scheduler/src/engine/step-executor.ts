import { Inject, Injectable, Optional } from '@nestjs/common';
import {
  type AgentCompensation,
  agentCompensation,
  CompensateStep,
  ErrorCode,
  FlexmigError,
  MigrationPolicy,
  QueryMigration,
  ReleaseCapacity,
  RelocateVm,
  ReserveCapacity,
  resumedWithTransferState,
  type ReplyOf,
  type RequestContract,
  type RequestOf,
  Role,
  RunStep,
  StepRecord,
  type StepReply,
  VmSpec,
} from '@flexmig/contracts';
import { NatsBus, neverDelivered, noReply, type Params, toErrorBody } from '@flexmig/messaging';
import { stepDefinition } from '@flexmig/saga';
import { sleep } from '@flexmig/timing';
import type { JsonValue, MigrationRef, SagaAction, StepName, StepOutcome, StepState } from '@flexmig/saga';
import type { DrivenMigration } from '../store/migration-store';
import { LeaseFence } from './lease-fence';

/** What the executor needs besides the action: persisted with the migration at admission. */
export interface MigrationContext {
  ref: MigrationRef;
  vm: VmSpec;
  policy: MigrationPolicy;
  targetAddress: string;
  /** Where the target listens for the stream, from its `transfer-config` reply (drivers that listen: qemu). */
  incomingAddress?: string;
  /** The W3C traceparent of the request that created the migration: its steps' spans continue it. */
  traceParent?: string;
}

const stepNamed = (steps: StepState[], name: StepName): StepState | undefined => steps.find((s) => s.name === name);

/** The executor's context of a stored migration. */
export const contextOf = (row: DrivenMigration): MigrationContext => {
  const incoming = (stepNamed(row.saga.steps, 'transfer-config')?.result as { incomingAddress?: string } | null | undefined)?.incomingAddress;
  return {
    ref: row.saga.ref,
    vm: row.vm,
    policy: row.policy,
    targetAddress: row.targetAddress,
    ...(incoming ? { incomingAddress: incoming } : {}),
    ...(row.traceParent ? { traceParent: row.traceParent } : {}),
  };
};

/** The steps that stream memory: a cancel stops their stream at once instead of waiting for them to end. */
export const STREAMING_STEPS: readonly StepName[] = ['transfer-memory', 'sync-memory'];

type RunAction = Extract<SagaAction, { kind: 'run-step' }>;
type QueryAction = Extract<SagaAction, { kind: 'query-step' }>;
type CompensateAction = Extract<SagaAction, { kind: 'compensate' }>;

const json = (v: unknown): JsonValue => JSON.parse(JSON.stringify(v)) as JsonValue;

/** When a silent agent is asked whether it still runs a step's attempt (StepExecutor.unlessLost). */
export interface SilentAgentProbe {
  /** Silence before the first question: longer than most steps take, so a healthy run never asks. */
  probeAfterMs: number;
  /** Between questions while the agent stays silent. */
  probeEveryMs: number;
}

export const DEFAULT_SILENT_AGENT_PROBE: SilentAgentProbe = { probeAfterMs: 2_000, probeEveryMs: 1_000 };
/** Nest's token for the probe's timing (the default when nothing provides it). */
export const SILENT_AGENT_PROBE = Symbol('SILENT_AGENT_PROBE');

/**
 * Carries out the saga's actions: the scheduler's own steps (`verify-compatibility`: inventory's checked reservation,
 * `commit`: the VM's new host in inventory) and the agents' steps, queries and compensations. Pure I/O:
 * every decision is the saga's. Every request goes through `send`, which the LeaseFence guards: a replica
 * that does not know it still holds the migration's lease sends nothing (LeaseNotHeld instead).
 */
@Injectable()
export class StepExecutor {
  constructor(
    private readonly nats: NatsBus,
    private readonly fence: LeaseFence,
    @Optional() @Inject(SILENT_AGENT_PROBE) private readonly silence: SilentAgentProbe = DEFAULT_SILENT_AGENT_PROBE,
  ) {}

  /** A request about one migration, sent only while this replica is known to hold its lease. */
  private send<C extends RequestContract>(ref: MigrationRef, contract: C, payload: RequestOf<C>, opts: { params?: Params; timeoutMs?: number } = {}): Promise<ReplyOf<C>> {
    this.fence.check(ref.migrationId);
    return this.nats.request(contract, payload, opts);
  }

  async run(ctx: MigrationContext, a: RunAction, timeoutMs: number): Promise<JsonValue> {
    switch (a.actor) {
      case 'scheduler':
        return a.name === 'verify-compatibility' ? this.verifyCompatibility(ctx, timeoutMs) : this.commit(ctx, timeoutMs);
      case 'source':
      case 'target':
        return json(await this.agentStep(ctx, a, a.actor, timeoutMs));
      case 'source+target': {
        // both halves at once (step 6): the target waits for the state the source sends, and one round trip
        // less lies inside the guest's downtime. Both are waited for, so that neither still runs when the step
        // ends.
        const [source, target] = await Promise.allSettled([this.agentStep(ctx, a, 'source', timeoutMs), this.agentStep(ctx, a, 'target', timeoutMs)]);
        return json(step6Outcome(a, source, target));
      }
    }
  }

  /**
   * `verify-compatibility`, one request (issue 11: one NATS round trip per step): inventory checks the target
   * (up, out of maintenance, same cluster, room), asks cpu-compat whether its CPU runs the VM's baseline, and
   * holds the capacity. A refusal is inventory's error (CPU_INCOMPATIBLE names the missing features).
   */
  private async verifyCompatibility(ctx: MigrationContext, timeoutMs: number): Promise<JsonValue> {
    const { ref } = ctx;
    const { reservation, verdict } = await this.send(ref, ReserveCapacity, { migrationId: ref.migrationId, vmId: ref.vmId, hostId: ref.targetHostId }, { timeoutMs });
    return json({ baseline: verdict.baseline, verdict: verdict.reason, reservation });
  }

  /** `commit`: inventory records the VM on its new host. Idempotent in inventory. */
  private async commit(ctx: MigrationContext, timeoutMs: number): Promise<JsonValue> {
    const { ref } = ctx;
    const { vm } = await this.send(
      ref,
      RelocateVm,
      { migrationId: ref.migrationId, vmId: ref.vmId, fromHostId: ref.sourceHostId, toHostId: ref.targetHostId },
      { timeoutMs },
    );
    return json({ hostId: vm.hostId });
  }

  private agentStep(ctx: MigrationContext, a: RunAction, role: Role, timeoutMs: number): Promise<StepReply> {
    const { ref } = ctx;
    const reply = this.send(
      ref,
      RunStep,
      {
        migrationId: ref.migrationId,
        step: a.step,
        stepName: a.name,
        attempt: a.attempt,
        role,
        vm: ctx.vm,
        sourceHostId: ref.sourceHostId,
        targetHostId: ref.targetHostId,
        targetAddress: ctx.targetAddress,
        ...(ctx.incomingAddress ? { incomingAddress: ctx.incomingAddress } : {}),
        policy: ctx.policy,
      },
      { params: { hostId: role === 'source' ? ref.sourceHostId : ref.targetHostId }, timeoutMs },
    );
    return this.unlessLost(ctx, a, role, reply);
  }

  /**
   * The agent's reply to a step command; or, once the agent has been silent for `probeAfterMs`, a
   * TIMEOUT as soon as its own records say this attempt will never answer (`lostAttempt`). An agent killed and
   * restarted inside a step loses the request, and waiting out the step's timeout kept a paused guest paused
   * that long (step 6: 31 s of downtime in the fault matrix's qemu:kill-target-agent@transfer-state). The
   * TIMEOUT sends the saga to its query, which reads the same records and retries or undoes the step. The
   * question is the saga's own (`QueryMigration` with the attempt): a step with no record there is fenced, so
   * a command still on its way can no longer run.
   */
  private async unlessLost(ctx: MigrationContext, a: RunAction, role: Role, reply: Promise<StepReply>): Promise<StepReply> {
    const done = new AbortController();
    const hostId = role === 'source' ? ctx.ref.sourceHostId : ctx.ref.targetHostId;
    const never = new Promise<never>(() => undefined);
    const watch = async (): Promise<never> => {
      await this.whileSilent(ctx.ref, hostId, { step: a.step, attempt: a.attempt }, done.signal, (steps) => {
        const lost = lostAttempt(steps, a.step, role, a.attempt);
        if (!lost) return false;
        throw new FlexmigError(
          ErrorCode.Timeout,
          `no reply from the ${role} agent on ${hostId} to attempt ${a.attempt} of ${a.name}, and its records say the attempt ${lost === 'never-ran' ? 'never ran there (the agent restarted before it?): it is fenced' : 'ended there (the agent restarted while it ran, or the reply was lost)'}`,
          { step: a.name, attempt: a.attempt, hostId, lost },
          true,
        );
      });
      return never;
    };
    try {
      return await Promise.race([reply, watch()]);
    } finally {
      done.abort();
    }
  }

  /**
   * Asks the agent on `hostId` what it knows of the migration's step (`QueryMigration` with `question`: with
   * an attempt, the agent fences one it has no record of) once it has been silent for `probeAfterMs`, then
   * every `probeEveryMs`, handing its records to `heard` until that says it has its answer (true) or `done`
   * aborts. An agent down or restarting is asked again; any other error (the lease gone, a refusal) ends the
   * asking, and the caller waits for its reply. What `heard` throws, this throws.
   */
  private async whileSilent(ref: MigrationRef, hostId: string, question: { step: number; attempt?: number }, done: AbortSignal, heard: (steps: StepRecord[]) => boolean): Promise<void> {
    await sleep(this.silence.probeAfterMs, done);
    while (!done.aborted) {
      let steps: StepRecord[];
      try {
        ({ steps } = await this.send(ref, QueryMigration, { migrationId: ref.migrationId, ...question }, { params: { hostId }, timeoutMs: this.silence.probeEveryMs * 2 }));
      } catch (e) {
        if (!noReply(e)) return;
        await sleep(this.silence.probeEveryMs, done);
        continue;
      }
      if (done.aborted || heard(steps)) return;
      await sleep(this.silence.probeEveryMs, done);
    }
  }

  /**
   * Resolves a step whose reply was lost by asking the agent(s) what they did (never by guessing).
   * The scheduler's own steps are idempotent requests to inventory: "not started" re-runs them safely.
   * Throws when an agent cannot be asked; the engine asks again later.
   */
  async query(ctx: MigrationContext, a: QueryAction): Promise<{ outcome: StepOutcome; result?: JsonValue; error?: { code: string; message: string; retryable: boolean } }> {
    if (a.actor === 'scheduler') return { outcome: 'not-started' };
    const roles: Role[] = a.actor === 'source+target' ? ['source', 'target'] : [a.actor];
    // both agents of step 6 at once: one round trip
    const records: (StepRecord | undefined)[] = await Promise.all(
      roles.map(async (role) => {
        const hostId = role === 'source' ? ctx.ref.sourceHostId : ctx.ref.targetHostId;
        const { steps } = await this.send(ctx.ref, QueryMigration, { migrationId: ctx.ref.migrationId, step: a.step, attempt: a.attempt }, { params: { hostId } });
        return steps.find((s) => s.step === a.step && s.role === role);
      }),
    );
    if (a.actor === 'source+target') {
      const [sourceRecord, targetRecord] = records;
      // the target started the guest with its half of step 6 (step 7 done with it): forward, whatever the source's record says
      if (targetRecord?.status === 'completed' && resumedWithTransferState(a.name, targetRecord.reply)) {
        return { outcome: 'completed', result: json({ ...(sourceRecord?.status === 'completed' ? sourceRecord.reply : {}), target: targetRecord.reply }) };
      }
      // a target half still running may be about to start it: waited for, even beside a failed source half
      if (targetRecord?.status === 'in-progress') return { outcome: 'in-progress' };
    }
    const failed = records.find((r) => r?.status === 'failed' || r?.status === 'compensated');
    if (failed) {
      return { outcome: 'failed', error: { code: failed.error?.code ?? ErrorCode.AgentFailed, message: failed.error?.message ?? `step ${a.name} was undone`, retryable: true } };
    }
    if (records.some((r) => r?.status === 'in-progress')) return { outcome: 'in-progress' };
    if (records.every((r) => r?.status === 'completed')) {
      const [first, second] = records.map((r) => r?.reply);
      return { outcome: 'completed', result: json(second ? { ...first, target: second } : first) };
    }
    return { outcome: 'not-started' };
  }

  async compensate(ctx: MigrationContext, a: CompensateAction, timeoutMs: number): Promise<void> {
    const { ref } = ctx;
    if (a.actor === 'scheduler') {
      await this.send(ref, ReleaseCapacity, { migrationId: ref.migrationId }, { timeoutMs });
      return;
    }
    // step 6: the target's copy is destroyed before the source is resumed, never after: a target that answers
    // that its copy ran (the agent refuses: participation.ts checkCopyNeverRan) stops the rollback there
    const roles: Role[] = a.actor === 'source+target' ? ['target', 'source'] : [a.actor];
    for (const role of roles) await this.compensateOn(ctx, a, role, timeoutMs);
  }

  /**
   * One agent's compensation, answered by its reply, or by its records once it stays silent: an agent
   * killed while it ran a compensation lost it, and waiting out the compensation's timeout (60 s by default)
   * kept the rollback, and a source paused since step 5, waiting that long. After `probeAfterMs` of silence
   * the agent is asked every `probeEveryMs` (`whileSilent`, without an attempt: nothing is fenced). A step
   * it records `compensated` is done (the reply was lost); a compensation it does not run now
   * (`lostCompensation`) is sent again, one resend out at a time, and an agent that still runs it joins the
   * one running (CompensationsInFlight). The first request's error fails it as before; a later one's only
   * when the agent answered it (a refusal), since silence is what the questions are for.
   */
  private compensateOn(ctx: MigrationContext, a: CompensateAction, role: Role, timeoutMs: number): Promise<void> {
    const { ref } = ctx;
    const hostId = role === 'source' ? ref.sourceHostId : ref.targetHostId;
    const deadline = Date.now() + timeoutMs;
    const command = { migrationId: ref.migrationId, step: a.step, stepName: a.name, compensation: compensationOn(a.name, role), role, vmId: ref.vmId };
    const sendOnce = async () => this.send(ref, CompensateStep, command, { params: { hostId }, timeoutMs: Math.max(1, deadline - Date.now()) });
    const done = new AbortController();
    return new Promise<void>((resolve, reject) => {
      const settle = (end: () => void) => {
        if (done.signal.aborted) return;
        done.abort();
        end();
      };
      sendOnce().then(() => settle(resolve), (e: unknown) => settle(() => reject(e)));
      // one resend out at a time: an agent of an older version, which neither joins nor says it runs one, gets
      // at most one more while it runs the first
      let resending = false;
      void this.whileSilent(ref, hostId, { step: a.step }, done.signal, (steps) => {
        const state = lostCompensation(steps, a.step, role);
        if (state === 'done') settle(resolve);
        if (state === 'lost' && !resending) {
          resending = true;
          sendOnce().then(
            () => settle(resolve),
            (e: unknown) => {
              resending = false;
              if (!noReply(e)) settle(() => reject(e));
            },
          );
        }
        return state === 'done';
      });
    });
  }

  /**
   * On cancel during one of the STREAMING_STEPS: the source runs that step's compensation (the saga's
   * `stepDefinition(step).compensation`) now, instead of waiting for the step to end.
   */
  async abortTransfer(ctx: MigrationContext, running: Pick<StepState, 'step' | 'name'>): Promise<void> {
    if (!STREAMING_STEPS.includes(running.name) || stepDefinition(running.step).actor !== 'source') {
      throw new Error(`${running.name} streams nothing to stop`);
    }
    await this.send(
      ctx.ref,
      CompensateStep,
      { migrationId: ctx.ref.migrationId, step: running.step, stepName: running.name, compensation: compensationOn(running.name, 'source'), role: 'source', vmId: ctx.ref.vmId },
      { params: { hostId: ctx.ref.sourceHostId } },
    );
  }
}

/**
 * What an agent's records say of an attempt it has not answered: `never-ran` when it has no record of the
 * step (the query that read them fenced the attempt, so it never runs now), `ended` when that attempt failed
 * or completed there (an agent restarted while it ran marks it failed; a completed one's reply was lost).
 * Undefined while it runs there, or when the records are of another attempt (this one may be on its way).
 */
export function lostAttempt(records: readonly StepRecord[], step: number, role: Role, attempt: number): 'never-ran' | 'ended' | undefined {
  const mine = records.find((r) => r.step === step && r.role === role);
  if (!mine) return 'never-ran';
  if (mine.attempt !== attempt || mine.status === 'in-progress') return undefined;
  return 'ended';
}

/**
 * What an agent's records say of a compensation it has not answered: `done` when it recorded the step
 * `compensated` (the reply was lost), `lost` when it does not run it now (it restarted, or the command never
 * reached it; a step it has no record of is `lost` too, and the agent's own refusal answers the resend).
 * Undefined while it runs it (`compensating`).
 */
export function lostCompensation(records: readonly StepRecord[], step: number, role: Role): 'done' | 'lost' | undefined {
  const mine = records.find((r) => r.step === step && r.role === role);
  if (mine?.status === 'compensated') return 'done';
  return mine?.compensating ? undefined : 'lost';
}

type Half = PromiseSettledResult<StepReply>;

/**
 * What step 6's two halves add up to (`{ ...source reply, target: target reply }`), or the error that reports
 * it. A target whose half started the guest (`resumedAt`: step 7 done with it, HypervisorDriver
 * .resumesWithTransferState) has passed the point of no return: the step succeeded, whatever the source's
 * half said (its error is kept as `sourceError`), and only forward from here. A target half that got no
 * answer (TIMEOUT, UNAVAILABLE but delivered) may have started the guest: it is reported as a timeout, so that the saga
 * asks the agents (StepExecutor.query) instead of retrying or undoing the step. Otherwise either failing fails
 * it, the source's error first.
 */
export function step6Outcome(a: Pick<RunAction, 'name' | 'attempt'>, source: Half, target: Half): Record<string, unknown> {
  if (target.status === 'fulfilled' && resumedWithTransferState(a.name, target.value)) {
    return source.status === 'fulfilled' ? { ...source.value, target: target.value } : { sourceError: toErrorBody(source.reason), target: target.value };
  }
  if (target.status === 'rejected' && unanswered(target.reason)) {
    throw new FlexmigError(
      ErrorCode.Timeout,
      `no answer from the target about attempt ${a.attempt} of ${a.name} (${(target.reason as Error).message}): it may have started the guest, so it is asked, never taken as failed`,
      { step: a.name, attempt: a.attempt },
      true,
    );
  }
  if (source.status === 'rejected') throw source.reason;
  if (target.status === 'rejected') throw target.reason;
  return { ...source.value, target: target.value };
}

/**
 * The request got no answer (no reply in time, a connection lost): its outcome is unknown. One that NATS
 * says reached no one (no responder on the subject) is not: that attempt never ran.
 */
const unanswered = (e: unknown): boolean => noReply(e) && !neverDelivered(e);


/** The compensation the saga names for a step on an agent (a step without one never gets here: the saga registers none). */
function compensationOn(step: StepName, role: Role): AgentCompensation {
  const c = agentCompensation(step, role);
  if (!c) throw new Error(`${step} has no compensation on the ${role}: the saga registered one it does not define`);
  return c;
}
