import { ErrorCode, FlexmigError, QueryMigration, QueryStreamEnd, STREAM_END_MAX_WAIT_MS, type StepCommand, type StreamEnd, stepNumber } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { neverDelivered, noReply } from '@flexmig/messaging';
import { sleep } from '@flexmig/timing';
import type { StreamEndWord } from './drivers/driver';

export interface SourceStreamEndOptions {
  /** How long the target waits for the source's word before its half of step 6 fails (the copy stays paused). */
  waitMs: number;
  /** The pause between two questions to a source agent that does not answer (restarting). */
  retryMs: number;
}

/** How often the step record of a source agent that predates QueryStreamEnd is read while its half runs. */
const olderAgentPollMs = 20;

export const sourceStreamEndDefaults: SourceStreamEndOptions = { waitMs: 30_000, retryMs: 250 };

/**
 * The target's half of step 6, before it starts the guest: waits until the source's agent says that the
 * migration's stream completed there (its copy stays paused, and nothing resumes it on its own) or that no
 * process runs the VM there (`QueryStreamEnd`). QEMU resumes a source whose switchover failed, even after the
 * target loaded the whole state (the return path broken at its end, or the source agent's own clean-up after a
 * failed final copy): a target that started on its own stream's end alone then made two running copies.
 *
 * Throws, and the guest stays paused here, when the source says its stream failed (CONFLICT, not retried: the
 * source copy runs) or when the source cannot be asked within `waitMs` (UNAVAILABLE: the saga asks both
 * agents; a source host that stays silent ends the migration needing attention, with this copy kept).
 *
 * A source agent older than QueryStreamEnd has no responder for it: its step 6 record (QueryMigration, which
 * fences nothing without an attempt) says the same, later (it completes once QEMU's figures are in).
 */
export async function awaitSourceStreamEnd(
  bus: NatsBus,
  cmd: StepCommand,
  o: SourceStreamEndOptions = sourceStreamEndDefaults,
  signal?: AbortSignal,
): Promise<StreamEndWord> {
  const deadline = Date.now() + o.waitMs;
  const params = { hostId: cmd.sourceHostId };
  let last = 'not asked yet';
  for (;;) {
    if (signal?.aborted) throw new FlexmigError(ErrorCode.Conflict, `the wait for the source's stream of migration ${cmd.migrationId} was given up: ${String(signal.reason)}`);
    const left = deadline - Date.now();
    let answer: StreamEndWord | undefined;
    let waited = false;
    try {
      const waitMs = Math.max(0, Math.min(STREAM_END_MAX_WAIT_MS, left));
      answer = await bus.request(QueryStreamEnd, { migrationId: cmd.migrationId, vmId: cmd.vm.id, waitMs }, { params, timeoutMs: waitMs + 2_000 });
      waited = true;
    } catch (e) {
      if (!noReply(e)) throw e;
      last = (e as Error).message;
      if (neverDelivered(e)) answer = await fromStepRecord(bus, cmd).catch(() => undefined);
    }
    if (answer) {
      last = `${answer.status}: ${answer.detail}`;
      if (answer.status === 'completed' || answer.status === 'gone') return answer;
      if (answer.status === 'failed') {
        throw new FlexmigError(
          ErrorCode.Conflict,
          `the source host ${cmd.sourceHostId} says the stream of migration ${cmd.migrationId} did not complete (${answer.detail}): the copy here stays paused and is never started beside the source's`,
          { sourceHostId: cmd.sourceHostId, streamEnd: answer.status },
          false,
        );
      }
    }
    if (Date.now() >= deadline) {
      throw new FlexmigError(
        ErrorCode.Unavailable,
        `the source host ${cmd.sourceHostId} did not say within ${o.waitMs} ms that the stream of migration ${cmd.migrationId} completed (last: ${last}): the copy here stays paused, as the source's may run; check the agent on ${cmd.sourceHostId}`,
        { sourceHostId: cmd.sourceHostId },
        true,
      );
    }
    // a source that answered `active` waited already; an older agent's record is read again soon; a silent one later
    if (!waited) await sleep(Math.min(answer ? olderAgentPollMs : o.retryMs, Math.max(0, deadline - Date.now())), signal);
  }
}

/** The source agent's record of its half of step 6, for an agent that predates QueryStreamEnd. */
async function fromStepRecord(bus: NatsBus, cmd: StepCommand): Promise<{ status: StreamEnd; detail: string } | undefined> {
  const step = stepNumber('transfer-state');
  const { steps } = await bus.request(QueryMigration, { migrationId: cmd.migrationId, step }, { params: { hostId: cmd.sourceHostId }, timeoutMs: 2_000 });
  const mine = steps.filter((s) => s.step === step && s.role === 'source').sort((a, b) => b.attempt - a.attempt)[0];
  if (mine?.status === 'completed') return { status: 'completed', detail: `its half of step 6 completed (attempt ${mine.attempt}; an agent without stream-end)` };
  if (mine?.status === 'failed' || mine?.status === 'compensated') return { status: 'failed', detail: `its half of step 6 ${mine.status} (attempt ${mine.attempt}): ${mine.error?.message ?? 'undone'}` };
  return { status: 'active', detail: `its half of step 6 is ${mine ? mine.status : 'not recorded'} (an agent without stream-end)` };
}
