import { ErrorCode, FlexmigError, Role, StepCommand, StepRecord, StepReply } from '@flexmig/contracts';

interface Entry {
  record: StepRecord;
  running?: Promise<StepReply>;
  failure?: FlexmigError;
}

/**
 * Makes step commands idempotent: a repeat of a command (same migration, step and role) gets the first
 * answer, or waits for the first execution when it is still running; a new attempt after a failure runs
 * again. It is also what the agent answers when the scheduler asks "what do you know of migration X".
 */
export class StepLedger {
  private readonly entries = new Map<string, Entry>();
  /** `migrationId:step` → highest attempt answered "not started": such attempts never run later. */
  private readonly fences = new Map<string, number>();

  private key(migrationId: string, step: number, role: Role) {
    return `${migrationId}:${step}:${role}`;
  }

  async run(cmd: StepCommand, execute: () => Promise<Omit<StepReply, 'repeated' | 'migrationId' | 'step' | 'attempt' | 'finishedAt'>>): Promise<StepReply> {
    const key = this.key(cmd.migrationId, cmd.step, cmd.role);
    const fence = this.fences.get(`${cmd.migrationId}:${cmd.step}`);
    if (fence !== undefined && cmd.attempt <= fence) {
      throw new FlexmigError(
        ErrorCode.Conflict,
        `attempt ${cmd.attempt} of step ${cmd.step} of migration ${cmd.migrationId} was reported not started and is fenced; a newer attempt runs instead`,
      );
    }
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
    const entry: Entry = { record: { step: cmd.step, role: cmd.role, attempt: cmd.attempt, status: 'in-progress' } };
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
        entry.record = { ...entry.record, status: 'completed', reply };
        return reply;
      } catch (e) {
        const failure =
          e instanceof FlexmigError ? e : new FlexmigError(ErrorCode.AgentFailed, `step ${cmd.stepName} failed: ${(e as Error)?.message ?? e}`);
        entry.record = { ...entry.record, status: 'failed', error: { code: failure.code, message: failure.message } };
        entry.failure = failure;
        throw failure;
      } finally {
        entry.running = undefined;
      }
    })();
    this.entries.set(key, entry);
    return entry.running;
  }

  markCompensated(migrationId: string, step: number, role: Role): void {
    const entry = this.entries.get(this.key(migrationId, step, role));
    if (entry) entry.record = { ...entry.record, status: 'compensated' };
    else this.entries.set(this.key(migrationId, step, role), { record: { step, role, attempt: 1, status: 'compensated' } });
  }

  /**
   * Answers "what happened to attempt N of step S": the records, and when there is none for that step,
   * fences attempt N (and older) so a late command cannot run after the scheduler moved on.
   */
  query(migrationId: string, step?: number, attempt?: number): StepRecord[] {
    const records = this.recordsOf(migrationId);
    if (step !== undefined && attempt !== undefined && !records.some((r) => r.step === step)) {
      const key = `${migrationId}:${step}`;
      this.fences.set(key, Math.max(this.fences.get(key) ?? 0, attempt));
    }
    return records;
  }

  recordsOf(migrationId: string): StepRecord[] {
    return [...this.entries.entries()]
      .filter(([k]) => k.startsWith(`${migrationId}:`))
      .map(([, e]) => e.record)
      .sort((a, b) => a.step - b.step);
  }
}
