import { Inject, Injectable, Logger } from '@nestjs/common';
import { renameSync } from 'node:fs';
import path from 'node:path';
import { AGENT_ENV, AgentEnv, agentStateDir } from './config';
import { ensurePrivateDir, readJsonFile, writePrivateFileAtomic } from './private-files';
import { LedgerSnapshotSchema, StepLedger } from './step-ledger';

/**
 * Keeps the agent's step ledger on disk (<AGENT_STATE_DIR>/<HOST_ID>.ledger.json, 0600), rewritten
 * atomically after every change: what this agent did for which migration survives a restart, which the
 * participation checks and the scheduler's queries rely on. A file that fails validation is set aside
 * (renamed `.invalid-<time>`) and the agent starts with an empty ledger, which refuses to continue or
 * undo the migrations it held: the scheduler ends them `failed-needs-attention`, never by a guess.
 */
@Injectable()
export class LedgerStore {
  private readonly log = new Logger('ledger');
  readonly file: string;

  constructor(@Inject(AGENT_ENV) env: AgentEnv) {
    this.file = path.join(agentStateDir(env), `${env.HOST_ID}.ledger.json`);
  }

  load(): StepLedger {
    const onChange = (l: StepLedger) => this.save(l);
    const read = readJsonFile(this.file, LedgerSnapshotSchema);
    switch (read.kind) {
      case 'missing':
        return new StepLedger(onChange);
      case 'ok': {
        const ledger = StepLedger.restore(read.value, onChange);
        if (read.value.entries.length) this.log.log(`restored ${read.value.entries.length} step record(s) from ${this.file}`);
        return ledger;
      }
      case 'invalid': {
        const aside = `${this.file}.invalid-${Date.now()}`;
        try {
          renameSync(this.file, aside);
        } catch {
          // leave it; it is overwritten at the first change
        }
        this.log.error(`the step ledger ${this.file} is invalid (${read.reason}); kept as ${aside}, starting with an empty ledger`);
        return new StepLedger(onChange);
      }
    }
  }

  save(ledger: StepLedger): void {
    try {
      ensurePrivateDir(path.dirname(this.file));
      writePrivateFileAtomic(this.file, JSON.stringify(ledger.snapshot()));
    } catch (e) {
      this.log.error(`cannot save the step ledger to ${this.file}: ${(e as Error).message}`);
    }
  }
}
