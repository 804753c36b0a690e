import { randomUUID } from 'node:crypto';
import { MigrationPolicySchema, QueryStreamEnd, type StepCommand, type StreamEnd, stepName } from '@flexmig/contracts';
import type { StreamEndWord } from './drivers/driver';
import { firstToLetGo, SourceWordsAhead, WORD_AHEAD_MAX_AGE_MS } from './source-word-ahead';

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

const settled = () => new Promise((r) => setImmediate(r));

/** A source that answers `status` (once `hold` resolves, if given), counting the questions; a clock the test moves. */
const setup = (status: StreamEnd = 'completed', hold?: Promise<void>) => {
  const asked: string[] = [];
  const bus = {
    request: async (contract: unknown, req: { migrationId: string }) => {
      if (contract !== QueryStreamEnd) throw new Error('unexpected request');
      asked.push(req.migrationId);
      await hold;
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
    await settled();
    expect(words.take(cmd.migrationId)).toEqual({ word: expect.objectContaining({ status: 'completed' }) });
    expect(words.take(cmd.migrationId)).toBeUndefined();
  });

  it('hands step 6 a question still under way, which it can stop', async () => {
    let answer!: () => void;
    const { words } = setup('completed', new Promise<void>((r) => (answer = r)));
    const cmd = step2();
    words.prepared(cmd);
    words.loaded(vm.id, cmd.migrationId);
    const ahead = words.take(cmd.migrationId);
    expect(ahead).toEqual({ pending: expect.any(Promise), stop: expect.any(Function) });
    answer();
    await expect((ahead as { pending: Promise<StreamEndWord | undefined> }).pending).resolves.toMatchObject({ status: 'completed' });
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

  it('keeps no word that does not let go (failed, or still active when the wait ran out): step 6 asks', async () => {
    for (const status of ['failed', 'active'] as const) {
      const { words } = setup(status);
      const cmd = step2();
      words.prepared(cmd);
      words.loaded(vm.id, cmd.migrationId);
      await new Promise((r) => setTimeout(r, 80)); // the wait of 50 ms runs out on `active`
      expect(words.take(cmd.migrationId)).toBeUndefined();
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

describe("firstToLetGo: step 6's own question beside one asked ahead", () => {
  const word = (status: StreamEnd): StreamEndWord => ({ status, detail: status });
  const never = new Promise<never>(() => undefined);

  it('the word asked ahead, when it lets go first', async () => {
    await expect(firstToLetGo(Promise.resolve(word('completed')), never)).resolves.toEqual(word('completed'));
  });

  it("step 6's own outcome, when the one ahead does not let go, or not first: its word, its refusal", async () => {
    await expect(firstToLetGo(Promise.resolve(undefined), Promise.resolve(word('gone')))).resolves.toEqual(word('gone'));
    await expect(firstToLetGo(never, Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    await expect(firstToLetGo(never, Promise.resolve(word('completed')))).resolves.toEqual(word('completed'));
  });
});
