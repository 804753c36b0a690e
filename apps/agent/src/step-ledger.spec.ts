import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ErrorCode, FlexmigError, MigrationPolicySchema, StepCommand, stepName } from '@flexmig/contracts';
import { AgentEnv } from './config';
import { LedgerStore } from './ledger-store';
import { LedgerSnapshotSchema, StepLedger, ledgerRetentionMs } from './step-ledger';

const vm = { id: randomUUID(), name: 'vm1', memoryMiB: 1024, vcpus: 1, cpuBaseline: 'IvyBridge' };
const cmd = (migrationId: string, step: number, role: 'source' | 'target', attempt = 1): StepCommand => ({
  migrationId,
  step,
  stepName: stepName(step),
  attempt,
  role,
  vm,
  sourceHostId: 'src',
  targetHostId: 'dst',
  policy: MigrationPolicySchema.parse({}),
});
const admitAll = async () => async () => ({});
const refuseAll = async () => {
  throw new FlexmigError(ErrorCode.NotAParticipant, 'forged');
};
const issued = (n: number) => async () => n;

describe('StepLedger', () => {
  it('given a refused command, then nothing is recorded and the real command for the same key runs after it', async () => {
    const l = new StepLedger();
    const m = randomUUID();
    await expect(l.run(cmd(m, 8, 'source'), refuseAll)).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
    expect(l.recordsOf(m)).toEqual([]);
    const reply = await l.run(cmd(m, 8, 'source'), admitAll);
    expect(reply).toMatchObject({ step: 8, attempt: 1, repeated: false });
  });

  it('given a command still being admitted, then a second one for the same key waits and is judged on its own', async () => {
    const l = new StepLedger();
    const m = randomUUID();
    let release!: () => void;
    const slowRefusal = () => new Promise<never>((_, reject) => (release = () => reject(new FlexmigError(ErrorCode.NotAParticipant, 'forged'))));
    const forged = l.run(cmd(m, 3, 'source'), slowRefusal);
    const real = l.run(cmd(m, 3, 'source'), admitAll);
    release();
    await expect(forged).rejects.toMatchObject({ code: ErrorCode.NotAParticipant });
    await expect(real).resolves.toMatchObject({ repeated: false });
  });

  describe('a step 4 that ends with the guest paused (step 5 done with it)', () => {
    const PAUSED = '2026-12-01T17:00:00.000Z';
    const pausedIn4 = async () => async () => ({ stats: { passes: 2, bytesTransferred: 1, remainingBytes: 0, throttlePct: 0 }, pausedAt: PAUSED });

    it('records step 5 completed (attempt 1, the same pause) with step 4, in one write: a step 5 command gets that answer, and step 6 sees it', async () => {
      const m = randomUUID();
      const writes: number[] = [];
      const l = new StepLedger((x) => writes.push(x.recordsOf(m).length));
      await l.run(cmd(m, 4, 'source'), pausedIn4);
      const records = l.recordsOf(m);
      expect(records.map((r) => [r.step, r.role, r.attempt, r.status])).toEqual(
        expect.arrayContaining([
          [4, 'source', 1, 'completed'],
          [5, 'source', 1, 'completed'],
        ]),
      );
      // the write that records step 4 completed already holds step 5: a crash cannot keep one without the other
      expect(writes.at(-1)).toBe(2);
      expect(records.find((r) => r.step === 5)!.reply).toMatchObject({ step: 5, attempt: 1, pausedAt: PAUSED });
      let ran = false;
      const five = await l.run(cmd(m, 5, 'source'), async () => async () => ((ran = true), {}));
      expect(five).toMatchObject({ step: 5, attempt: 1, repeated: true, pausedAt: PAUSED });
      expect(ran).toBe(false);
      expect(l.history(m).map((h) => h.record.step)).toEqual(expect.arrayContaining([4, 5]));
    });

    it('without pausedAt, or on the target, or for another step, nothing else is recorded', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.run(cmd(m, 4, 'source'), admitAll);
      await l.run(cmd(m, 8, 'source'), pausedIn4);
      await l.run(cmd(m, 6, 'target'), pausedIn4);
      expect(l.recordsOf(m).map((r) => r.step).sort()).toEqual([4, 6, 8]);
    });

    it('does not write over a fence of step 5 (an attempt reported not started stays refused)', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.query(m, issued(1), 5, 1); // fences attempt 1 of step 5
      await l.run(cmd(m, 4, 'source'), pausedIn4);
      expect(l.recordsOf(m).some((r) => r.step === 5)).toBe(false);
      await expect(l.run(cmd(m, 5, 'source', 1), admitAll)).rejects.toMatchObject({ code: ErrorCode.Conflict });
    });

    it('survives a restart (the store reads both records back)', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'fm-ledger-'));
      try {
        const env = { HOST_ID: 'host-p', AGENT_STATE_DIR: dir } as AgentEnv;
        const m = randomUUID();
        await new LedgerStore(env).load().run(cmd(m, 4, 'source'), pausedIn4);
        const again = new LedgerStore(env).load();
        expect(again.recordsOf(m).find((r) => r.step === 5)).toMatchObject({ status: 'completed', reply: { pausedAt: PAUSED } });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('a step 3 that ends with the guest paused (steps 4 and 5 done with it)', () => {
    const PAUSED = '2026-12-07T13:30:00.000Z';
    const stats = { passes: 1, bytesTransferred: 1, remainingBytes: 4096 };
    const pausedIn3 = async () => async () => ({ stats, pausedAt: PAUSED });

    it('records steps 4 and 5 completed (attempt 1, the same pause, step 4 with its figures) with step 3, in one write: their commands get those answers', async () => {
      const m = randomUUID();
      const writes: number[] = [];
      const l = new StepLedger((x) => writes.push(x.recordsOf(m).length));
      await l.run(cmd(m, 3, 'source'), pausedIn3);
      expect(l.recordsOf(m).map((r) => [r.step, r.attempt, r.status]).sort()).toEqual([
        [3, 1, 'completed'],
        [4, 1, 'completed'],
        [5, 1, 'completed'],
      ]);
      // the write that records step 3 completed already holds steps 4 and 5
      expect(writes.at(-1)).toBe(3);
      let ran = false;
      const never = async () => async () => ((ran = true), {});
      // a scheduler that sends step 4 anyway (one older than this) gets the pause with it, and takes step 5 as done
      await expect(l.run(cmd(m, 4, 'source'), never)).resolves.toMatchObject({ step: 4, attempt: 1, repeated: true, stats, pausedAt: PAUSED });
      await expect(l.run(cmd(m, 5, 'source'), never)).resolves.toMatchObject({ step: 5, attempt: 1, repeated: true, pausedAt: PAUSED });
      expect(ran).toBe(false);
    });

    it('does not write over a fence of step 4, nor record step 5 past it', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.query(m, issued(1), 4, 1); // fences attempt 1 of step 4
      await l.run(cmd(m, 3, 'source'), pausedIn3);
      expect(l.recordsOf(m).map((r) => r.step)).toEqual([3]);
      await expect(l.run(cmd(m, 4, 'source', 1), admitAll)).rejects.toMatchObject({ code: ErrorCode.Conflict });
    });
  });

  describe("a target's half of step 6 that ends with the guest running (step 7 done with it)", () => {
    const RESUMED = '2026-12-03T12:00:00.000Z';
    const resumedIn6 = async () => async () => ({ resumedAt: RESUMED });

    it('records step 7 completed (attempt 1, the same resume) with step 6, in one write: a step 7 command gets that answer without running', async () => {
      const m = randomUUID();
      const writes: number[] = [];
      const l = new StepLedger((x) => writes.push(x.recordsOf(m).length));
      await l.run(cmd(m, 6, 'target', 2), resumedIn6);
      expect(l.recordsOf(m).map((r) => [r.step, r.role, r.attempt, r.status])).toEqual([
        [6, 'target', 2, 'completed'],
        [7, 'target', 1, 'completed'],
      ]);
      expect(writes.at(-1)).toBe(2);
      let ran = false;
      const seven = await l.run(cmd(m, 7, 'target'), async () => async () => ((ran = true), {}));
      expect(seven).toMatchObject({ step: 7, attempt: 1, repeated: true, resumedAt: RESUMED });
      expect(ran).toBe(false);
    });

    it('on the source half nothing else is recorded', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.run(cmd(m, 6, 'source'), resumedIn6);
      expect(l.recordsOf(m).map((r) => r.step)).toEqual([6]);
    });
  });

  describe('query and fencing', () => {
    it('given a query for attempt 99 that the scheduler never issued, then ATTEMPT_NOT_ISSUED and attempt 1 still runs', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      const e = await l.query(m, issued(1), 3, 99).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: ErrorCode.AttemptNotIssued });
      expect((e as Error).message).toMatch(/attempt 99 of step 3 .* was never issued \(the scheduler's latest is 1\)/);
      await expect(l.run(cmd(m, 3, 'source', 1), admitAll)).resolves.toMatchObject({ attempt: 1 });
    });

    it('given a query for an attempt the scheduler issued and this agent never saw, then it is fenced and refused later', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      expect(await l.query(m, issued(1), 2, 1)).toEqual([]);
      await expect(l.run(cmd(m, 2, 'target', 1), admitAll)).rejects.toMatchObject({ code: ErrorCode.Conflict, message: expect.stringMatching(/fenced/) });
      await expect(l.run(cmd(m, 2, 'target', 2), admitAll)).resolves.toMatchObject({ attempt: 2 });
    });

    it('given a command still being admitted (its checks ask other services), then a query reports it in progress and fences nothing', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      let admitNow!: () => void;
      const slowAdmission = () => new Promise<() => Promise<object>>((r) => (admitNow = () => r(async () => ({}))));
      const running = l.run(cmd(m, 8, 'source', 2), slowAdmission);
      await new Promise((r) => setImmediate(r));
      const asked = jest.fn(issued(2));
      expect(await l.query(m, asked, 8, 2)).toEqual([{ step: 8, role: 'source', attempt: 2, status: 'in-progress' }]);
      expect(asked).not.toHaveBeenCalled();
      admitNow();
      await expect(running).resolves.toMatchObject({ step: 8, attempt: 2, repeated: false });
      expect(await l.query(m, asked, 8, 2)).toEqual([expect.objectContaining({ step: 8, status: 'completed' })]);
    });

    it('given a record of the step, then the query answers it and fences nothing (the scheduler is not asked)', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.run(cmd(m, 2, 'target'), admitAll);
      const asked = jest.fn(issued(5));
      expect(await l.query(m, asked, 2, 1)).toEqual([expect.objectContaining({ step: 2, status: 'completed' })]);
      expect(asked).not.toHaveBeenCalled();
    });
  });

  describe('snapshot and restore (what survives an agent restart)', () => {
    it('keeps records (with their VM) and fences; a step in progress comes back failed, retryable by a new attempt', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.run(cmd(m, 3, 'source'), admitAll);
      void l.run(cmd(m, 4, 'source'), async () => () => new Promise<never>(() => undefined)).catch(() => undefined); // never ends
      await new Promise((r) => setImmediate(r));
      await l.query(m, issued(1), 5, 1);
      const snap = LedgerSnapshotSchema.parse(JSON.parse(JSON.stringify(l.snapshot())));
      const back = StepLedger.restore(snap);
      expect(back.history(m)).toEqual([
        { vmId: vm.id, record: expect.objectContaining({ step: 3, status: 'completed' }) },
        { vmId: vm.id, record: expect.objectContaining({ step: 4, status: 'failed', error: expect.objectContaining({ code: ErrorCode.AgentFailed }) }) },
      ]);
      await expect(back.run(cmd(m, 4, 'source', 1), admitAll)).rejects.toMatchObject({ code: ErrorCode.AgentFailed });
      await expect(back.run(cmd(m, 4, 'source', 2), admitAll)).resolves.toMatchObject({ attempt: 2 });
      await expect(back.run(cmd(m, 5, 'source', 1), admitAll)).rejects.toMatchObject({ message: expect.stringMatching(/fenced/) });
    });

    it('drops the migrations idle past the retention, never one with a step in progress', async () => {
      let now = 1_000_000;
      const l = new StepLedger(undefined, () => now);
      const [old, recent] = [randomUUID(), randomUUID()];
      await l.run(cmd(old, 3, 'source'), admitAll);
      now += ledgerRetentionMs + 1;
      await l.run(cmd(recent, 3, 'source'), admitAll);
      const snap = l.snapshot();
      expect(new Set(snap.entries.map((e) => e.migrationId))).toEqual(new Set([recent]));
      expect(l.recordsOf(old)).toEqual([]);
      expect(l.recordsOf(recent)).toEqual([expect.objectContaining({ step: 3, status: 'completed' })]);
    });

    it("reads one migration's records among many others': its own, by step, before and after a restart", async () => {
      const l = new StepLedger();
      const m = randomUUID();
      const others = Array.from({ length: 200 }, () => randomUUID());
      await l.run(cmd(m, 6, 'source'), admitAll);
      for (const o of others) await l.run(cmd(o, 3, 'source'), admitAll);
      await l.run(cmd(m, 3, 'source'), admitAll);
      await l.run(cmd(m, 2, 'target'), admitAll);
      const mine = [
        [2, 'target'],
        [3, 'source'],
        [6, 'source'],
      ];
      expect(l.recordsOf(m).map((r) => [r.step, r.role])).toEqual(mine);
      expect(l.recordsOf(others[7]!).map((r) => [r.step, r.role])).toEqual([[3, 'source']]);
      const back = StepLedger.restore(LedgerSnapshotSchema.parse(JSON.parse(JSON.stringify(l.snapshot()))));
      expect(back.snapshot().entries).toHaveLength(others.length + mine.length);
      expect(back.recordsOf(m).map((r) => [r.step, r.role])).toEqual(mine);
      await expect(back.run(cmd(m, 3, 'source'), admitAll)).resolves.toMatchObject({ repeated: true });
    });
  });
  describe('a migration an operator resolved (closed)', () => {
    it('given a closed migration, then no later step of it runs (a stale resume-target cannot run a fenced copy), and the close survives a restart', async () => {
      const l = new StepLedger();
      const m = randomUUID();
      await l.run(cmd(m, 2, 'target'), admitAll);
      l.close(m, 'fence');
      const stale = await l.run(cmd(m, 7, 'target'), admitAll).catch((x: unknown) => x);
      expect(stale).toMatchObject({ code: ErrorCode.Conflict, message: expect.stringContaining('was resolved by an operator') });
      const back = StepLedger.restore(LedgerSnapshotSchema.parse(JSON.parse(JSON.stringify(l.snapshot()))));
      expect(back.closedAs(m)).toBe('fence');
      await expect(back.run(cmd(m, 6, 'target'), admitAll)).rejects.toMatchObject({ code: ErrorCode.Conflict });
      // another migration is not affected
      await expect(back.run(cmd(randomUUID(), 2, 'target'), admitAll)).resolves.toMatchObject({ repeated: false });
    });

    it('reads a ledger file written before closes existed', () => {
      const snap = LedgerSnapshotSchema.parse({ version: 1, entries: [], fences: [] });
      expect(snap.closed).toEqual([]);
      expect(StepLedger.restore(snap).closedAs(randomUUID())).toBeUndefined();
    });
  });
});

describe('LedgerStore (a file per migration)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'fm-ledger-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const env = (stateDir: string) => ({ HOST_ID: 'host-l', AGENT_STATE_DIR: stateDir }) as AgentEnv;

  it("writes <dir>/<HOST_ID>.ledger/<migrationId>.json 0600 in 0700 directories, after every change, and reads it back", async () => {
    const stateDir = path.join(dir, 'state');
    const store = new LedgerStore(env(stateDir));
    const [m, n] = [randomUUID(), randomUUID()];
    const ledger = store.load();
    await ledger.run(cmd(m, 2, 'target'), admitAll);
    await ledger.run(cmd(n, 3, 'source'), admitAll);
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(store.dir).mode & 0o777).toBe(0o700);
    expect(statSync(store.fileOf(m)).mode & 0o777).toBe(0o600);
    expect(readdirSync(store.dir).sort()).toEqual([`${m}.json`, `${n}.json`].sort()); // no temp file left behind
    const mine = JSON.parse(readFileSync(store.fileOf(m), 'utf8'));
    expect(mine.entries.map((e: { migrationId: string }) => e.migrationId)).toEqual([m]);
    const back = new LedgerStore(env(stateDir)).load();
    expect(back.recordsOf(m)).toEqual([expect.objectContaining({ step: 2, status: 'completed' })]);
    expect(back.recordsOf(n)).toEqual([expect.objectContaining({ step: 3, status: 'completed' })]);
  });

  it("rewrites only the changed migration's file", async () => {
    const store = new LedgerStore(env(dir));
    const [m, n] = [randomUUID(), randomUUID()];
    const ledger = store.load();
    await ledger.run(cmd(m, 2, 'target'), admitAll);
    const before = statSync(store.fileOf(m)).ino;
    await ledger.run(cmd(n, 3, 'source'), admitAll);
    await ledger.query(n, issued(1), 4, 1); // a fence of n's step 4
    expect(statSync(store.fileOf(m)).ino).toBe(before);
    expect(JSON.parse(readFileSync(store.fileOf(n), 'utf8')).fences).toEqual([expect.objectContaining({ migrationId: n, step: 4, attempt: 1 })]);
  });

  it("sets an invalid file aside and reads the others (that migration's steps are refused, never guessed)", async () => {
    const store = new LedgerStore(env(dir));
    const [good, bad, smuggler] = [randomUUID(), randomUUID(), randomUUID()];
    await store.load().run(cmd(good, 2, 'target'), admitAll);
    writeFileSync(store.fileOf(bad), JSON.stringify({ version: 1, entries: [{ migrationId: 'x' }], fences: [] }));
    // a file whose records are another migration's is not that migration's
    const other = new StepLedger();
    await other.run(cmd(good, 3, 'source'), admitAll);
    writeFileSync(store.fileOf(smuggler), JSON.stringify(other.snapshotOf(good)));
    writeFileSync(path.join(store.dir, `${good}.json.12345.tmp`), '{"half a wr');
    const back = new LedgerStore(env(dir)).load();
    expect(back.recordsOf(good)).toEqual([expect.objectContaining({ step: 2, role: 'target' })]);
    expect(back.recordsOf(bad)).toEqual([]);
    expect(back.recordsOf(smuggler)).toEqual([]);
    const names = readdirSync(store.dir);
    expect(names.filter((f) => f.includes('.invalid-')).map((f) => f.slice(0, 36)).sort()).toEqual([bad, smuggler].sort());
    expect(names.some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('reads the single file of an older agent once, and splits it into the directory', async () => {
    const [m, n] = [randomUUID(), randomUUID()];
    const old = new StepLedger();
    await old.run(cmd(m, 2, 'target'), admitAll);
    await old.run(cmd(n, 3, 'source'), admitAll);
    old.close(n, 'keep');
    const store = new LedgerStore(env(dir));
    writeFileSync(store.singleFile, JSON.stringify(old.snapshot()));
    const back = store.load();
    expect(back.recordsOf(m)).toEqual([expect.objectContaining({ step: 2, status: 'completed' })]);
    expect(back.closedAs(n)).toBe('keep');
    expect(readdirSync(dir)).toEqual(['host-l.ledger']);
    expect(readdirSync(store.dir).sort()).toEqual([`${m}.json`, `${n}.json`].sort());
    expect(new LedgerStore(env(dir)).load().closedAs(n)).toBe('keep');
  });

  it('sets an invalid single file aside and starts without its records', () => {
    const store = new LedgerStore(env(dir));
    writeFileSync(store.singleFile, JSON.stringify({ version: 1, entries: [{ migrationId: 'x' }], fences: [] }));
    expect(store.load().snapshot().entries).toEqual([]);
    expect(readdirSync(dir).some((f) => f.startsWith('host-l.ledger.json.invalid-'))).toBe(true);
  });

  it('removes the files of the migrations it drops past the retention, at most once a minute, after the change', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      const store = new LedgerStore(env(dir));
      const ledger = store.load();
      const [old, recent] = [randomUUID(), randomUUID()];
      await ledger.run(cmd(old, 3, 'source'), admitAll);
      jest.setSystemTime(Date.now() + ledgerRetentionMs + 120_000);
      await ledger.run(cmd(recent, 3, 'source'), admitAll);
      expect(readdirSync(store.dir)).toContain(`${old}.json`); // not inside the change's own write
      await new Promise((r) => setImmediate(r));
      expect(readdirSync(store.dir)).toEqual([`${recent}.json`]);
      expect(ledger.recordsOf(old)).toEqual([]);
    } finally {
      jest.useRealTimers();
    }
  });
});
