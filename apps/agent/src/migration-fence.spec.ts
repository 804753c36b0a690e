import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { type CopyState, fenceAction } from './migration-fence';

const vmId = '00000000-0000-4000-8000-000000000001';

describe('fenceAction: what an operator resolution does with this host copy', () => {
  it.each<[CopyState, string]>([
    ['running', 'pause'],
    ['incoming', 'destroy'],
    ['paused', 'none'],
    ['stopped', 'none'],
    ['absent', 'none'],
  ])('fence: a %s copy → %s (a copy that ran is never destroyed)', (copy, action) => {
    expect(fenceAction('fence', copy, false, vmId)).toBe(action);
    expect(fenceAction('fence', copy, true, vmId)).toBe(action);
  });

  it('keep: a running copy is left running; a paused one is resumed only when asked to', () => {
    expect(fenceAction('keep', 'running', true, vmId)).toBe('none');
    expect(fenceAction('keep', 'paused', true, vmId)).toBe('resume');
    expect(fenceAction('keep', 'paused', false, vmId)).toBe('none');
  });

  it.each<[CopyState, string]>([
    ['incoming', ErrorCode.Conflict],
    ['stopped', ErrorCode.NotFound],
    ['absent', ErrorCode.NotFound],
  ])('keep: a %s copy cannot be the VM (%s)', (copy, code) => {
    const r = fenceAction('keep', copy, true, vmId);
    expect(r).toBeInstanceOf(FlexmigError);
    expect((r as FlexmigError).code).toBe(code);
    expect((r as FlexmigError).message).toContain(vmId);
  });
});
