import { z } from 'zod';
import { ErrorCode, FenceOutcome, FlexmigError, Role, STEP_NAMES, StepCommand, StepRecord, StepRecordSchema, StepReply, UuidSchema } from '@flexmig/contracts';
import { LedgerRecord, stepDoneWith } from './participation';

type StepOutput = Omit<StepReply, 'repeated' | 'migrationId' | 'step' | 'attempt' | 'finishedAt'>;

interface Entry {
  migrationId: string;
  vmId: string;
  record: StepRecord;
  updatedAt: number;
  running?: Promise<StepReply>;
  failure?: FlexmigError;
}

/**
 * The ledger's entries by key (`migrationId:step:role`) and by migration: a step's checks, a repeat and a
 * query read one migration's records, which costs the same whatever else the ledger holds (three days of a
 * busy host's migrations: ledgerRetentionMs).
 */
class Entries {
  private readonly byMigration = new Map<string, Map<string, Entry>>();

  get(key: string): Entry | undefined {
    return this.byMigration.get(key.slice(0, key.indexOf(':')))?.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, entry: Entry): void {
    let of = this.byMigration.get(entry.migrationId);
    if (!of) this.byMigration.set(entry.migrationId, (of = new Map()));
    of.set(key, entry);
  }

  /** One migration's entries, in the order they were first recorded. */
  of(migrationId: string): Iterable<Entry> {
    return this.byMigration.get(migrationId)?.values() ?? [];
  }

  *values(): IterableIterator<Entry> {
    for (const of of this.byMigration.values()) yield* of.values();
  }

  dropMigrations(ids: ReadonlySet<string>): void {
    for (const id of ids) this.byMigration.delete(id);
  }
}

/** The ledger as it is kept on disk (LedgerStore): validated when read. */
export const LedgerSnapshotSchema = z.object({
  version: z.literal(1),
  entries: z.array(z.object({ migrationId: UuidSchema, vmId: UuidSchema, record: StepRecordSchema, updatedAt: z.number() })),
  fences: z.array(z.object({ migrationId: UuidSchema, step: z.number().int().min(1).max(9), attempt: z.number().int().min(1), updatedAt: z.number() })),
  /** Migrations an operator resolved (agent.{hostId}.migration.fence): none of their steps runs here again. Absent in older files. */
  closed: z.array(z.object({ migrationId: UuidSchema, outcome: z.enum(['keep', 'fence']), updatedAt: z.number() })).default([]),
});
export type LedgerSnapshot = z.infer<typeof LedgerSnapshotSchema>;

/**
 * How long the records of a migration with nothing in progress are kept after their last change: far
 * longer than a migration runs or retries, so a late repeat, query or compensation still finds them;
 * short enough that the file an agent rewrites after each step stays small.
 */
export const ledgerRetentionMs = 3 * 24 * 3600_000;

/** Admits a command (the participation checks); returns the work to run, or throws the refusal. */
export type Admit = (history: readonly LedgerRecord[]) => Promise<() => Promise<StepOutput>>;
/** The attempt of a step the scheduler has issued (0: none), asked before fencing an attempt never seen here. */
export type IssuedAttempt = (migrationId: string, step: number) => Promise<number>;

/**
 * Makes step commands idempotent: a repeat of a command (same migration, step and role) gets the first
 * answer, or waits for the first execution when it is still running; a new attempt after a failure runs
 * again. It is also what the agent answers when the scheduler asks "what do you know of migration X",
 * and what the participation checks read (which steps of which migration, for which VM, this agent did).
 * A refused command leaves no record: a forged one cannot spoil the real one's key.
 */
export class StepLedger {
  private readonly entries = new Entries();
  /** `migrationId:step` → highest attempt answered "not started": such attempts never run later. */
  private readonly fences = new Map<string, { attempt: number; updatedAt: number }>();
  /** Migrations an operator resolved, with what this host's copy became: their steps never run here again. */
  private readonly closed = new Map<string, { outcome: FenceOutcome; updatedAt: number }>();
  /**
   * Admissions under way, per key: a second command for the same key waits for the first to settle. A
   * query reports them as in progress (their checks ask other services, which takes a while), and never
   * fences them.
   */
  private readonly admitting = new Map<string, { done: Promise<unknown>; record: StepRecord }>();

  /** `onChange` is called after every change worth keeping, with the migration it concerns (the store writes that migration's file). */
  constructor(
    private readonly onChange: (ledger: StepLedger, migrationId: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  private key(migrationId: string, step: number, role: Role) {
    return `${migrationId}:${step}:${role}`;
  }

  async run(cmd: StepCommand, admit: Admit): Promise<StepReply> {
    const key = this.key(cmd.migrationId, cmd.step, cmd.role);
    for (let pending = this.admitting.get(key); pending; pending = this.admitting.get(key)) await pending.done.catch(() => undefined);
    const closed = this.closed.get(cmd.migrationId);
    if (closed) {
      throw new FlexmigError(
        ErrorCode.Conflict,
        `migration ${cmd.migrationId} was resolved by an operator (this host's copy ${closed.outcome === 'keep' ? 'is the VM' : 'is fenced'}): its steps no longer run here`,
        { migrationId: cmd.migrationId, closed: closed.outcome },
        false,
      );
    }
    this.refuseIfFenced(cmd);
    const existing = this.entries.get(key);
    if (existing) {
      const { record } = existing;
      if (record.status === 'completed' && record.reply) return { ...record.reply, repeated: true };
      if (record.status === 'in-progress' && existing.running) return { ...(await existing.running), repeated: true };
      if (record.status === 'compensated') {
        throw new FlexmigError(ErrorCode.Conflict, `step ${cmd.step} of migration ${cmd.migrationId} was compensated; it does not run again`);
      }
      if (record.status === 'failed' && cmd.attempt <= record.attempt && existing.failure) throw existing.failure;
    }
    const admission = admit(this.history(cmd.migrationId));
    this.admitting.set(key, { done: admission, record: { step: cmd.step, role: cmd.role, attempt: cmd.attempt, status: 'in-progress' } });
    let execute: () => Promise<StepOutput>;
    try {
      execute = await admission;
    } finally {
      this.admitting.delete(key);
    }
    // fenced while it was admitted (by a query that found no record: an older ledger, or another caller)
    this.refuseIfFenced(cmd);
    const entry: Entry = { migrationId: cmd.migrationId, vmId: cmd.vm.id, record: { step: cmd.step, role: cmd.role, attempt: cmd.attempt, status: 'in-progress' }, updatedAt: this.now() };
    entry.running = (async () => {
      try {
        const out = await execute();
        const reply: StepReply = {
          ...out,
          migrationId: cmd.migrationId,
          step: cmd.step,
          attempt: cmd.attempt,
          repeated: false,
          finishedAt: new Date().toISOString(),
        };
        this.recordDoneWith(cmd, reply);
        this.update(entry, { ...entry.record, status: 'completed', reply });
        return reply;
      } catch (e) {
        const failure =
          e instanceof FlexmigError ? e : new FlexmigError(ErrorCode.AgentFailed, `step ${cmd.stepName} failed: ${(e as Error)?.message ?? e}`);
        entry.failure = failure;
        this.update(entry, { ...entry.record, status: 'failed', error: { code: failure.code, message: failure.message } });
        throw failure;
      } finally {
        entry.running = undefined;
      }
    })();
    this.entries.set(key, entry);
    this.onChange(this, cmd.migrationId);
    return entry.running;
  }

  private refuseIfFenced(cmd: StepCommand): void {
    const fence = this.fences.get(`${cmd.migrationId}:${cmd.step}`);
    if (fence !== undefined && cmd.attempt <= fence.attempt) {
      throw new FlexmigError(
        ErrorCode.Conflict,
        `attempt ${cmd.attempt} of step ${cmd.step} of migration ${cmd.migrationId} was reported not started and is fenced; a newer attempt runs instead`,
      );
    }
  }

  /**
   * The steps this one did along with it (participation.ts `stepDoneWith`: steps 4 and 5 in a step 3 that
   * ended paused, step 5 in such a step 4, step 7 in such a target half of step 6), recorded before the step's
   * own completion, so that the one write that follows keeps them all. Not over a record or a fence of such a
   * step (a scheduler that already issued it has its own answer), nor past one: a step 5 done with step 3
   * only beside a step 4 done with it.
   */
  private recordDoneWith(cmd: StepCommand, reply: StepReply): void {
    for (const record of stepDoneWith(cmd, reply)) {
      const key = this.key(cmd.migrationId, record.step, record.role);
      if (this.entries.has(key) || this.fences.has(`${cmd.migrationId}:${record.step}`)) return;
      this.entries.set(key, { migrationId: cmd.migrationId, vmId: cmd.vm.id, record, updatedAt: this.now() });
    }
  }

  private update(entry: Entry, record: StepRecord): void {
    entry.record = record;
    entry.updatedAt = this.now();
    this.onChange(this, entry.migrationId);
  }

  /** Records a compensation done (of a step this agent ran: the caller checked its record exists). */
  markCompensated(migrationId: string, step: number, role: Role): void {
    const entry = this.entries.get(this.key(migrationId, step, role));
    if (entry) this.update(entry, { ...entry.record, status: 'compensated' });
  }

  /** Records that an operator resolved a migration (kept or fenced this host's copy): kept on disk, refuses its later steps. */
  close(migrationId: string, outcome: FenceOutcome): void {
    this.closed.set(migrationId, { outcome, updatedAt: this.now() });
    this.onChange(this, migrationId);
  }

  /** What an operator's resolution made of this host's copy, or undefined while the migration is not resolved. */
  closedAs(migrationId: string): FenceOutcome | undefined {
    return this.closed.get(migrationId)?.outcome;
  }

  /**
   * Answers "what happened to attempt N of step S": the records, and when there is none for that step,
   * fences attempt N (and older) so a late command cannot run after the scheduler moved on. Only attempts
   * the scheduler has issued are fenced (it is asked, unless this agent fenced as far already): a query
   * for an attempt it never issued is refused, so nobody can fence the attempts still to come.
   */
  async query(migrationId: string, issued: IssuedAttempt, step?: number, attempt?: number): Promise<StepRecord[]> {
    const records = this.withAdmissions(migrationId, this.recordsOf(migrationId));
    if (step === undefined || attempt === undefined || records.some((r) => r.step === step)) return records;
    const key = `${migrationId}:${step}`;
    const fenced = this.fences.get(key)?.attempt ?? 0;
    if (attempt > fenced) {
      const highest = await issued(migrationId, step);
      if (attempt > highest) {
        throw new FlexmigError(
          ErrorCode.AttemptNotIssued,
          `attempt ${attempt} of step ${step} of migration ${migrationId} was never issued (the scheduler's latest is ${highest}): it is not fenced`,
          { migrationId, step, attempt, issued: highest },
          false,
        );
      }
      // the records may have changed while the scheduler was asked: a command that arrived meanwhile ran
      const now = this.withAdmissions(migrationId, this.recordsOf(migrationId));
      if (now.some((r) => r.step === step)) return now;
      this.fences.set(key, { attempt: Math.max(this.fences.get(key)?.attempt ?? 0, attempt), updatedAt: this.now() });
      this.onChange(this, migrationId);
    }
    return records;
  }

  /** `records`, and an in-progress record for each command of the migration still being admitted (none recorded yet). */
  private withAdmissions(migrationId: string, records: StepRecord[]): StepRecord[] {
    const admitting = [...this.admitting.entries()]
      .filter(([k]) => k.startsWith(`${migrationId}:`))
      .map(([, a]) => a.record)
      .filter((a) => !records.some((r) => r.step === a.step && r.role === a.role));
    return admitting.length ? [...records, ...admitting].sort((x, y) => x.step - y.step) : records;
  }

  recordsOf(migrationId: string): StepRecord[] {
    return this.history(migrationId).map((h) => h.record);
  }

  /** This agent's records of a migration, with their VM, by step. */
  history(migrationId: string): LedgerRecord[] {
    return [...this.entries.of(migrationId)]
      .map((e) => ({ vmId: e.vmId, record: e.record }))
      .sort((a, b) => a.record.step - b.record.step);
  }

  /** Every record, fence and close, less the migrations idle past the retention. */
  snapshot(): LedgerSnapshot {
    this.prune();
    return {
      version: 1,
      entries: [...this.entries.values()].map(persisted),
      fences: [...this.fences.entries()].map(([k, f]) => {
        const [migrationId, step] = k.split(':');
        return { migrationId: migrationId!, step: Number(step), attempt: f.attempt, updatedAt: f.updatedAt };
      }),
      closed: [...this.closed.entries()].map(([migrationId, c]) => ({ migrationId, outcome: c.outcome, updatedAt: c.updatedAt })),
    };
  }

  /**
   * One migration's records, fences and close: what the store keeps in that migration's file. Its cost
   * does not depend on what else the ledger holds.
   */
  snapshotOf(migrationId: string): LedgerSnapshot {
    const fences: LedgerSnapshot['fences'] = [];
    for (let step = 1; step <= STEP_NAMES.length; step++) {
      const f = this.fences.get(`${migrationId}:${step}`);
      if (f) fences.push({ migrationId, step, attempt: f.attempt, updatedAt: f.updatedAt });
    }
    const closed = this.closed.get(migrationId);
    return {
      version: 1,
      entries: [...this.entries.of(migrationId)].map(persisted),
      fences,
      closed: closed ? [{ migrationId, outcome: closed.outcome, updatedAt: closed.updatedAt }] : [],
    };
  }

  /**
   * A ledger from what the store read. A step that was in progress when the agent stopped is failed: no
   * process runs it any more, and the scheduler, told so, runs a new attempt or undoes the migration.
   */
  static restore(s: LedgerSnapshot, onChange?: (l: StepLedger, migrationId: string) => void, now?: () => number): StepLedger {
    const l = new StepLedger(onChange, now);
    l.absorb(s);
    return l;
  }

  /** Adds what the store read (a whole ledger, or one migration's file) to this ledger, as `restore` reads it. */
  absorb(s: LedgerSnapshot): void {
    for (const e of s.entries) {
      let record = e.record;
      let failure: FlexmigError | undefined;
      if (record.status === 'in-progress') {
        failure = new FlexmigError(ErrorCode.AgentFailed, `the agent stopped while step ${record.step} (${record.role}) ran; it is not running any more`, undefined, true);
        record = { ...record, status: 'failed', error: { code: failure.code, message: failure.message } };
      } else if (record.status === 'failed' && record.error) {
        failure = FlexmigError.fromBody(record.error);
      }
      this.entries.set(this.key(e.migrationId, record.step, record.role), { migrationId: e.migrationId, vmId: e.vmId, record, updatedAt: e.updatedAt, ...(failure ? { failure } : {}) });
    }
    for (const f of s.fences) this.fences.set(`${f.migrationId}:${f.step}`, { attempt: f.attempt, updatedAt: f.updatedAt });
    for (const c of s.closed ?? []) this.closed.set(c.migrationId, { outcome: c.outcome, updatedAt: c.updatedAt });
  }

  /** Drops the migrations with nothing in progress whose last change is older than the retention; returns their ids. */
  prune(): string[] {
    const cutoff = this.now() - ledgerRetentionMs;
    const last = new Map<string, number>();
    const busy = new Set<string>();
    for (const e of this.entries.values()) {
      last.set(e.migrationId, Math.max(last.get(e.migrationId) ?? 0, e.updatedAt));
      if (e.record.status === 'in-progress') busy.add(e.migrationId);
    }
    for (const [k, f] of this.fences) {
      const id = k.slice(0, k.indexOf(':'));
      last.set(id, Math.max(last.get(id) ?? 0, f.updatedAt));
    }
    for (const [id, c] of this.closed) last.set(id, Math.max(last.get(id) ?? 0, c.updatedAt));
    const stale = new Set([...last].filter(([id, t]) => t < cutoff && !busy.has(id)).map(([id]) => id));
    if (stale.size === 0) return [];
    this.entries.dropMigrations(stale);
    for (const k of this.fences.keys()) if (stale.has(k.slice(0, k.indexOf(':')))) this.fences.delete(k);
    for (const id of this.closed.keys()) if (stale.has(id)) this.closed.delete(id);
    return [...stale];
  }
}

/** An entry as the store keeps it (without what lives only in memory: the running promise, the error object). */
const persisted = (e: Entry): LedgerSnapshot['entries'][number] => ({ migrationId: e.migrationId, vmId: e.vmId, record: e.record, updatedAt: e.updatedAt });

