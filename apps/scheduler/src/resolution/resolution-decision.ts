/**
 * Where does the VM of a `failed-needs-attention` migration run, and may it be closed that way? Pure: the
 * agents' answers (each asked with a deadline) and the operator's optional statement in, a plan or a
 * refusal (a typed error that names what flexmig found and what to pass) out. docs/migrations.md,
 * "Resolving a migration that needs attention".
 *
 * - Both agents answered and exactly one runs the VM: that decides. A `runsOn` that names the other is
 *   refused (it contradicts them).
 * - Otherwise (both run it, neither does, or one cannot be asked) the operator must say (`runsOn`), and
 *   is refused when the agents contradict it: the named host has no copy, or only an incoming one that
 *   never received its state, or the other host runs the VM while the named one does not (or cannot say).
 * - The kept copy is resumed only when it is paused and the other agent answered (so its copy can be
 *   fenced first): a VM never runs twice because of a resolution.
 */
import { ErrorCode, FlexmigError } from '@flexmig/contracts';

export type Side = 'source' | 'target';
export type CopyState = 'running' | 'paused' | 'incoming' | 'stopped' | 'absent';

/** One agent's answer to "which VMs do you run", reduced to this VM. */
export interface AgentAnswer {
  hostId: string;
  role: Side;
  answered: boolean;
  /** The VM's copy on that host, when it answered. */
  copy: CopyState | null;
  /** Why it could not be asked. */
  error: string | null;
}

export interface ResolutionPlan {
  runsOn: Side;
  decidedBy: 'agents' | 'operator';
  keep: AgentAnswer;
  fence: AgentAnswer;
  /** Resume the kept copy (it is paused), once the other copy is fenced. */
  resumeKept: boolean;
}

const other = (s: Side): Side => (s === 'source' ? 'target' : 'source');

/** "source h1: running; target h2: could not be asked (timeout)": what flexmig found, for messages. */
export function describeAnswers(answers: Record<Side, AgentAnswer>): string {
  const one = (a: AgentAnswer) =>
    a.answered ? `${a.role} ${a.hostId}: ${a.copy === 'absent' ? 'no copy of the VM' : `the VM is ${a.copy}`}` : `${a.role} ${a.hostId}: its agent could not be asked (${a.error})`;
  return `${one(answers.source)}; ${one(answers.target)}`;
}

const runs = (a: AgentAnswer) => a.answered && a.copy === 'running';

export function decideResolution(answers: Record<Side, AgentAnswer>, runsOn?: Side): ResolutionPlan | FlexmigError {
  const found = describeAnswers(answers);
  const details = { agents: [answers.source, answers.target], ...(runsOn ? { runsOn } : {}) };
  const plan = (side: Side, decidedBy: ResolutionPlan['decidedBy']): ResolutionPlan => {
    const keep = answers[side];
    const fence = answers[other(side)];
    return { runsOn: side, decidedBy, keep, fence, resumeKept: keep.answered && keep.copy === 'paused' && fence.answered };
  };

  const running = (['source', 'target'] as const).filter((s) => runs(answers[s]));
  const bothAnswered = answers.source.answered && answers.target.answered;
  if (bothAnswered && running.length === 1) {
    const side = running[0]!;
    if (runsOn && runsOn !== side) {
      return new FlexmigError(
        ErrorCode.RunsOnContradicted,
        `runsOn=${runsOn} contradicts the agents: ${found}. The VM runs on the ${side} host ${answers[side].hostId}: pass runsOn=${side}, or leave runsOn out`,
        details,
        false,
      );
    }
    return plan(side, 'agents');
  }

  if (!runsOn) {
    const why =
      running.length === 2
        ? 'both agents run the VM (a split brain)'
        : !bothAnswered
          ? `the ${[answers.source, answers.target].filter((a) => !a.answered).map((a) => a.role).join(' and ')} agent cannot be asked`
          : 'neither agent runs the VM';
    return new FlexmigError(
      ErrorCode.RunsOnRequired,
      `flexmig cannot tell where the VM runs: ${why} (${found}). Check the hosts, then pass runsOn=source or runsOn=target, with a reason`,
      details,
      false,
    );
  }

  const named = answers[runsOn];
  const rest = answers[other(runsOn)];
  if (named.answered && (named.copy === 'absent' || named.copy === 'stopped')) {
    return new FlexmigError(ErrorCode.RunsOnContradicted, `runsOn=${runsOn} contradicts the agents: the ${runsOn} host ${named.hostId} has no live copy of the VM (${found})`, details, false);
  }
  if (named.answered && named.copy === 'incoming') {
    return new FlexmigError(
      ErrorCode.RunsOnContradicted,
      `runsOn=${runsOn} contradicts the agents: the copy on the ${runsOn} host ${named.hostId} is an incoming one that never received the VM's state (${found})`,
      details,
      false,
    );
  }
  if (runs(rest) && !runs(named)) {
    return new FlexmigError(
      ErrorCode.RunsOnContradicted,
      `runsOn=${runsOn} contradicts the agents: the ${rest.role} host ${rest.hostId} runs the VM and the ${runsOn} host does not say it does (${found}); ` +
        `flexmig does not pause the only copy known to run: pass runsOn=${rest.role}, or resolve again once the ${runsOn} agent answers`,
      details,
      false,
    );
  }
  return plan(runsOn, 'operator');
}
