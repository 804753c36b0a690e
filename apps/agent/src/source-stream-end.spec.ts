import { randomUUID } from 'node:crypto';
import { ErrorCode, FlexmigError, MigrationPolicySchema, QueryMigration, QueryStreamEnd, type StepCommand, type StepRecord, type StreamEnd } from '@flexmig/contracts';
import { awaitSourceStreamEnd } from './source-stream-end';

const cmd: StepCommand = {
  migrationId: randomUUID(),
  step: 6,
  stepName: 'transfer-state',
  attempt: 1,
  role: 'target',
  vm: { id: randomUUID(), name: 'vm-1', memoryMiB: 512, vcpus: 1, cpuBaseline: 'IvyBridge' },
  sourceHostId: 'src',
  targetHostId: 'dst',
  policy: MigrationPolicySchema.parse({}),
};

const noResponders = () => new FlexmigError(ErrorCode.Unavailable, 'nobody answers', { delivered: false });
type Answer = StreamEnd | FlexmigError;

/** A bus whose source agent answers QueryStreamEnd with `answers` in turn (the last repeats) and QueryMigration with `records`. */
function bus(answers: Answer[], records?: StepRecord[]) {
  const asked: { what: 'stream-end' | 'query'; hostId: string; waitMs?: number }[] = [];
  let n = 0;
  return {
    asked,
    request: async (contract: unknown, req: { waitMs?: number }, opts: { params: { hostId: string } }) => {
      if (contract === QueryMigration) {
        asked.push({ what: 'query', hostId: opts.params.hostId });
        if (!records) throw noResponders();
        return { migrationId: cmd.migrationId, steps: records };
      }
      if (contract !== QueryStreamEnd) throw new Error('unexpected request');
      asked.push({ what: 'stream-end', hostId: opts.params.hostId, waitMs: req.waitMs });
      const a = answers[Math.min(n++, answers.length - 1)];
      if (a instanceof FlexmigError) throw a;
      return { migrationId: cmd.migrationId, status: a, detail: `it is ${a}` };
    },
  };
}

const fast = { waitMs: 300, retryMs: 5 };

describe('awaitSourceStreamEnd: the target starts the guest only on the source’s word', () => {
  it('returns at once when the source says completed, or gone, asking the source host with the wait it has left', async () => {
    for (const status of ['completed', 'gone'] as const) {
      const b = bus([status]);
      await expect(awaitSourceStreamEnd(b as never, cmd, fast)).resolves.toMatchObject({ status, detail: `it is ${status}` });
      expect(b.asked).toEqual([{ what: 'stream-end', hostId: 'src', waitMs: expect.any(Number) }]);
      expect(b.asked[0].waitMs).toBeGreaterThan(250);
    }
  });

  it("passes on what the source said of the guest's memory that held data", async () => {
    const b = bus(['completed']);
    const request = b.request;
    b.request = async (...args: Parameters<typeof request>) => ({ ...(await request(...args)), residentBytes: 42 * 2 ** 20 }) as never;
    await expect(awaitSourceStreamEnd(b as never, cmd, fast)).resolves.toEqual({ migrationId: cmd.migrationId, status: 'completed', detail: 'it is completed', residentBytes: 42 * 2 ** 20 });
  });

  it('asks again while the stream is active, and after an agent that was restarting (no responder, no record)', async () => {
    const b = bus(['active', noResponders(), 'completed']);
    await expect(awaitSourceStreamEnd(b as never, cmd, fast)).resolves.toMatchObject({ status: 'completed' });
    expect(b.asked.map((a) => a.what)).toEqual(['stream-end', 'stream-end', 'query', 'stream-end']);
  });

  it('refuses for good when the source says its stream failed: CONFLICT, not retryable', async () => {
    await expect(awaitSourceStreamEnd(bus(['failed']) as never, cmd, fast)).rejects.toMatchObject({ code: ErrorCode.Conflict, retryable: false, details: { sourceHostId: 'src', streamEnd: 'failed' } });
  });

  it('gives up after its wait when the source never says: UNAVAILABLE, retryable, with the last thing it heard', async () => {
    const t = Date.now();
    const e = await awaitSourceStreamEnd(bus([new FlexmigError(ErrorCode.Timeout, 'no reply on stream-end')]) as never, cmd, fast).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.Unavailable, retryable: true, message: expect.stringContaining('no reply on stream-end') });
    expect(Date.now() - t).toBeGreaterThanOrEqual(fast.waitMs - 5);
  });

  it('throws any other error of the request as it is (a refusal is not silence)', async () => {
    const refused = new FlexmigError(ErrorCode.ValidationFailed, 'bad request');
    await expect(awaitSourceStreamEnd(bus([refused]) as never, cmd, fast)).rejects.toBe(refused);
  });

  it('reads the step record of a source agent that predates stream-end: its half of step 6 completed, or failed', async () => {
    const record = (status: StepRecord['status']): StepRecord[] => [{ step: 6, role: 'source', attempt: 1, status }];
    await expect(awaitSourceStreamEnd(bus([noResponders()], record('completed')) as never, cmd, fast)).resolves.toMatchObject({ status: 'completed' });
    await expect(awaitSourceStreamEnd(bus([noResponders()], record('failed')) as never, cmd, fast)).rejects.toMatchObject({ code: ErrorCode.Conflict });
    const running = bus([noResponders()], record('in-progress'));
    await expect(awaitSourceStreamEnd(running as never, cmd, fast)).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    expect(running.asked.filter((a) => a.what === 'query').length).toBeGreaterThan(3);
  });

  it('stops when its caller gives up (the state never loaded here)', async () => {
    const stop = new AbortController();
    const p = awaitSourceStreamEnd(bus([noResponders()]) as never, cmd, { waitMs: 10_000, retryMs: 5 }, stop.signal);
    stop.abort('the state did not load here');
    await expect(p).rejects.toMatchObject({ message: expect.stringContaining('the state did not load here') });
  });
});
