import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { type AgentAnswer, type CopyState, decideResolution, type ResolutionPlan, type Side } from './resolution-decision';

const src = (copy: CopyState | 'unreachable'): AgentAnswer =>
  copy === 'unreachable' ? { hostId: 'h-src', role: 'source', answered: false, copy: null, error: 'no answer within 3000 ms' } : { hostId: 'h-src', role: 'source', answered: true, copy, error: null };
const tgt = (copy: CopyState | 'unreachable'): AgentAnswer =>
  copy === 'unreachable' ? { hostId: 'h-tgt', role: 'target', answered: false, copy: null, error: 'no responders' } : { hostId: 'h-tgt', role: 'target', answered: true, copy, error: null };

type Answers = [CopyState | 'unreachable', CopyState | 'unreachable'];
const decide = ([s, t]: Answers, runsOn?: Side) => decideResolution({ source: src(s), target: tgt(t) }, runsOn);
const planOf = (r: ResolutionPlan | FlexmigError): ResolutionPlan => {
  if (r instanceof FlexmigError) throw new Error(`expected a plan, got ${r.code}: ${r.message}`);
  return r;
};
const refusalOf = (r: ResolutionPlan | FlexmigError): FlexmigError => {
  if (!(r instanceof FlexmigError)) throw new Error(`expected a refusal, got a plan for ${r.runsOn}`);
  return r;
};

describe('decideResolution: the agents answers × the operator statement', () => {
  describe('given both agents answer and exactly one runs the VM', () => {
    it.each<[Answers, Side]>([
      [['running', 'incoming'], 'source'],
      [['running', 'absent'], 'source'],
      [['running', 'paused'], 'source'],
      [['absent', 'running'], 'target'],
      [['paused', 'running'], 'target'],
      [['stopped', 'running'], 'target'],
    ])('%j: the agents decide (%s), with or without the same runsOn', (answers, side) => {
      for (const runsOn of [undefined, side]) {
        const p = planOf(decide(answers, runsOn));
        expect(p).toMatchObject({ runsOn: side, decidedBy: 'agents', resumeKept: false });
        expect(p.keep.role).toBe(side);
        expect(p.fence.role).toBe(side === 'source' ? 'target' : 'source');
      }
    });

    it('refuses a runsOn that names the other host, with the evidence', () => {
      const e = refusalOf(decide(['running', 'incoming'], 'target'));
      expect(e.code).toBe(ErrorCode.RunsOnContradicted);
      expect(e.message).toContain('runsOn=target contradicts the agents');
      expect(e.message).toContain('source h-src: the VM is running');
      expect(e.message).toContain('target h-tgt: the VM is incoming');
      expect(e.message).toContain('pass runsOn=source');
      expect(e.details).toMatchObject({ runsOn: 'target', agents: [{ hostId: 'h-src', copy: 'running' }, { hostId: 'h-tgt', copy: 'incoming' }] });
    });
  });

  describe('given the agents cannot tell', () => {
    it.each<[Answers, string]>([
      [['running', 'running'], 'both agents run the VM (a split brain)'],
      [['paused', 'paused'], 'neither agent runs the VM'],
      [['paused', 'incoming'], 'neither agent runs the VM'],
      [['running', 'unreachable'], 'the target agent cannot be asked'],
      [['unreachable', 'running'], 'the source agent cannot be asked'],
      [['unreachable', 'unreachable'], 'the source and target agent cannot be asked'],
    ])('%j without runsOn: 422 RUNS_ON_REQUIRED that says what was found and what to pass', (answers, why) => {
      const e = refusalOf(decide(answers));
      expect(e.code).toBe(ErrorCode.RunsOnRequired);
      expect(e.message).toContain(why);
      expect(e.message).toContain('pass runsOn=source or runsOn=target');
    });

    it.each<[Answers, Side, boolean]>([
      // split brain: the operator picks; the other copy is paused (never destroyed)
      [['running', 'running'], 'source', false],
      [['running', 'running'], 'target', false],
      // nothing runs: the named paused copy is resumed once the other is fenced
      [['paused', 'paused'], 'source', true],
      [['paused', 'paused'], 'target', true],
      [['paused', 'incoming'], 'source', true],
      [['paused', 'absent'], 'source', true],
      // one agent cannot be asked
      [['running', 'unreachable'], 'source', false],
      [['unreachable', 'paused'], 'source', false],
      [['unreachable', 'absent'], 'source', false],
      [['unreachable', 'unreachable'], 'target', false],
      // a paused copy is not resumed while the other host cannot be asked (it might run the VM)
      [['paused', 'unreachable'], 'source', false],
    ])('%j with runsOn=%s: the operator decides (resume the kept copy: %s)', (answers, runsOn, resume) => {
      expect(planOf(decide(answers, runsOn))).toMatchObject({ runsOn, decidedBy: 'operator', resumeKept: resume });
    });

    it.each<[Answers, Side, string]>([
      [['paused', 'absent'], 'target', 'has no live copy'],
      [['paused', 'stopped'], 'target', 'has no live copy'],
      [['absent', 'absent'], 'source', 'has no live copy'],
      [['paused', 'incoming'], 'target', 'never received'],
      [['running', 'unreachable'], 'target', 'does not pause the only copy known to run'],
      [['unreachable', 'running'], 'source', 'does not pause the only copy known to run'],
    ])('%j with runsOn=%s: 409 RUNS_ON_CONTRADICTED (%s)', (answers, runsOn, why) => {
      const e = refusalOf(decide(answers, runsOn));
      expect(e.code).toBe(ErrorCode.RunsOnContradicted);
      expect(e.message).toContain(why);
      expect(e.retryable).toBe(false);
    });
  });
});
