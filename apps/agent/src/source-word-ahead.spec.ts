import { randomUUID } from 'node:crypto';
import { MigrationPolicySchema, QueryStreamEnd, type StepCommand, type StreamEnd, stepName } from '@flexmig/contracts';
import { SourceWordsAhead, WORD_AHEAD_MAX_AGE_MS } from './source-word-ahead';

const vm = { id: randomUUID(), name: 'vm-w', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
const step2 = (migrationId = randomUUID()): StepCommand => ({
  migrationId,
  step: 2,
  stepName: stepName(2),
  attempt: 1,
  role: 'target',
  vm,
  sourceHostId: 'src',
  targetHostId: 'dst',
  policy: MigrationPolicySchema.parse({}),
});

/** A source that answers `status`, counting the questions; a clock the test moves. */
const setup = (status: StreamEnd = 'completed') => {
  const asked: string[] = [];
  const bus = {
    request: async (contract: unknown, req: { migrationId: string }) => {
      if (contract !== QueryStreamEnd) throw new Error('unexpected request');
      asked.push(req.migrationId);
      return { migrationId: req.migrationId, status, detail: `the source's ${status}` };
    },
  };
  let now = 1_000;
  const words = new SourceWordsAhead(bus as never, () => ({ waitMs: 50, retryMs: 5 }), () => now);
  return { words, asked, tick: (ms: number) => (now += ms) };
};

describe("SourceWordsAhead: the source's word kept from the copy's load to its step 6", () => {
  it('asks when the copy prepared at step 2 loads, and hands the word to step 6 once', async () => {
    const { words, asked } = setup();
    const cmd = step2();
    expect(words.take(cmd.migrationId)).toBeUndefined();
    words.prepared(cmd);
    words.loaded(vm.id, cmd.migrationId);
    expect(asked).toEqual([cmd.migrationId]);
    await expect(words.take(cmd.migrationId)).resolves.toMatchObject({ status: 'completed' });
    expect(words.take(cmd.migrationId)).toBeUndefined();
  });

  it('never asks for a copy step 2 did not prepare here, nor for another VM of that migration', () => {
    const { words, asked } = setup();
    const cmd = step2();
    words.loaded(vm.id, cmd.migrationId);
    words.prepared(cmd);
    words.loaded(randomUUID(), cmd.migrationId);
    expect(asked).toEqual([]);
  });

  it(`gives step 6 no word older than ${WORD_AHEAD_MAX_AGE_MS} ms: it asks again`, async () => {
    const { words, tick } = setup();
    const cmd = step2();
    words.prepared(cmd);
    words.loaded(vm.id, cmd.migrationId);
    tick(WORD_AHEAD_MAX_AGE_MS + 1);
    expect(words.take(cmd.migrationId)).toBeUndefined();
  });

  it('a word that does not let go resolves to nothing (failed, or still active when the wait ran out)', async () => {
    for (const status of ['failed', 'active'] as const) {
      const { words } = setup(status);
      const cmd = step2();
      words.prepared(cmd);
      words.loaded(vm.id, cmd.migrationId);
      await expect(words.take(cmd.migrationId)).resolves.toBeUndefined();
    }
  });

  it('forgets a destroyed copy, and a prepared step 2 again starts afresh', async () => {
    const { words, asked } = setup();
    const cmd = step2();
    words.prepared(cmd);
    words.loaded(vm.id, cmd.migrationId);
    words.forget(cmd.migrationId);
    expect(words.take(cmd.migrationId)).toBeUndefined();
    words.prepared(cmd);
    expect(words.take(cmd.migrationId)).toBeUndefined();
    words.prepared(cmd);
    words.loaded(vm.id, cmd.migrationId);
    expect(asked).toHaveLength(2);
  });

  it('remembers a bounded number of prepared copies, the oldest forgotten first', () => {
    const { words, asked } = setup();
    const cmds = Array.from({ length: 300 }, () => step2());
    for (const c of cmds) words.prepared(c);
    words.loaded(vm.id, cmds[0]!.migrationId);
    words.loaded(vm.id, cmds[299]!.migrationId);
    expect(asked).toEqual([cmds[299]!.migrationId]);
  });
});
