import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { TargetWatch } from './target-watch';

const gone = new FlexmigError(ErrorCode.Unavailable, 'target host dst does not answer', {}, true);

/** A question the test answers when it likes: `answer(undefined)` is "all is well". */
function pendingQuestions() {
  const waiting: ((v: FlexmigError | undefined) => void)[] = [];
  return {
    asked: () => waiting.length,
    lost: () => new Promise<FlexmigError | undefined>((r) => waiting.push(r)),
    answerAll: (v: FlexmigError | undefined) => waiting.splice(0).forEach((r) => r(v)),
  };
}

describe('TargetWatch: a memory copy stops when its target is lost, and only while the copy runs', () => {
  it('stops the copy and fails its step with the reason when the target is lost during it', async () => {
    const q = pendingQuestions();
    const stop = jest.fn(async () => undefined);
    let endCopy!: (e: Error) => void;
    const copy = new Promise<string>((_, reject) => (endCopy = reject));
    const watched = new TargetWatch({ intervalMs: 5, lost: q.lost, stop }).around(() => copy);
    while (q.asked() === 0) await sleep(5);
    q.answerAll(gone);
    while (stop.mock.calls.length === 0) await sleep(5);
    endCopy(new Error('the stream was cancelled')); // what the driver's cancel does to the copy
    await expect(watched).rejects.toBe(gone);
  });

  it('asks again while all is well, one question at a time, and the copy ends as it would', async () => {
    const q = pendingQuestions();
    const stop = jest.fn(async () => undefined);
    let finish!: (v: string) => void;
    const watched = new TargetWatch({ intervalMs: 5, lost: q.lost, stop }).around(() => new Promise<string>((r) => (finish = r)));
    for (let i = 0; i < 3; i++) {
      while (q.asked() === 0) await sleep(5);
      await sleep(20); // several intervals pass while a question is out: no second one
      expect(q.asked()).toBe(1);
      q.answerAll(undefined);
    }
    finish('stats');
    await expect(watched).resolves.toBe('stats');
    expect(stop).not.toHaveBeenCalled();
  });

  it('drops a question still out when the copy ended: a late "does not answer" stops nothing (the guest may be at pre-switchover)', async () => {
    const q = pendingQuestions();
    const stop = jest.fn(async () => undefined);
    let finish!: (v: string) => void;
    const watched = new TargetWatch({ intervalMs: 5, lost: q.lost, stop }).around(() => new Promise<string>((r) => (finish = r)));
    while (q.asked() === 0) await sleep(5);
    finish('at pre-switchover');
    await expect(watched).resolves.toBe('at pre-switchover');
    q.answerAll(gone); // the target agent was killed after step 6 was sent: its answer never came
    await sleep(30);
    expect(stop).not.toHaveBeenCalled();
    expect(q.asked()).toBe(0); // and nothing is asked after the end
  });
});
