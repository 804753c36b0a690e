import { Inject, Injectable, Logger } from '@nestjs/common';
import { readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { isUuid } from '@flexmig/contracts';
import { AGENT_ENV, AgentEnv, agentStateDir } from './config';
import { ensurePrivateDir, readJsonFile, writePrivateFileAtomic } from './private-files';
import { LedgerSnapshot, LedgerSnapshotSchema, StepLedger } from './step-ledger';

/** How often, at most, the store drops the migrations idle past the ledger's retention (and their files). */
const pruneEveryMs = 60_000;

/**
 * Keeps the agent's step ledger on disk, one file per migration: <AGENT_STATE_DIR>/<HOST_ID>.ledger/
 * <migrationId>.json, 0600 in a 0700 directory. After each change, the file of the migration it concerns
 * is rewritten atomically: what this agent did for which migration survives a restart, which the
 * participation checks and the scheduler's queries rely on. A change then costs the same whatever else the
 * ledger holds (three days of a host's migrations); the whole ledger in one file cost 6 ms per change at
 * 1,000 migrations and 19 ms at 3,000, two or three of them inside the guest's downtime.
 *
 * A file that fails validation (or names another migration inside) is set aside (renamed
 * `.invalid-<time>`) and that migration's records are not read: the agent then refuses to continue or undo
 * it, and the scheduler ends it `failed-needs-attention`, never by a guess. The single file older agents
 * kept (<HOST_ID>.ledger.json) is read once and split into the directory.
 */
@Injectable()
export class LedgerStore {
  private readonly log = new Logger('ledger');
  /** The directory of the migrations' files. */
  readonly dir: string;
  /** Where agents before this one kept the whole ledger. */
  readonly singleFile: string;
  private lastPrune = Date.now();

  constructor(@Inject(AGENT_ENV) env: AgentEnv) {
    this.dir = path.join(agentStateDir(env), `${env.HOST_ID}.ledger`);
    this.singleFile = path.join(agentStateDir(env), `${env.HOST_ID}.ledger.json`);
  }

  load(): StepLedger {
    const ledger = new StepLedger((l, migrationId) => this.save(l, migrationId));
    const single = this.readSingleFile();
    if (single) ledger.absorb(single);
    let files = 0;
    for (const name of this.names()) {
      const file = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(file, { force: true }); // a write the agent did not finish: the file it was to replace is intact
        continue;
      }
      const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
      if (!isUuid(id)) continue; // a file set aside, or not the ledger's
      const read = readJsonFile(file, LedgerSnapshotSchema);
      const reason = read.kind === 'invalid' ? read.reason : read.kind === 'ok' ? foreign(read.value, id) : undefined;
      if (reason !== undefined) this.setAside(file, `the step ledger's file of migration ${id}, ${file}, is invalid (${reason})`);
      else if (read.kind === 'ok') {
        ledger.absorb(read.value);
        files++;
      }
    }
    if (single) {
      // split into the directory first: an agent stopped meanwhile reads both again, and they agree
      for (const id of new Set(single.entries.map((e) => e.migrationId).concat(single.fences.map((f) => f.migrationId), single.closed.map((c) => c.migrationId)))) {
        this.save(ledger, id);
      }
      rmSync(this.singleFile, { force: true });
      this.log.log(`moved ${single.entries.length} step record(s) from ${this.singleFile} into ${this.dir}`);
    }
    if (files) this.log.log(`restored the step records of ${files} migration(s) from ${this.dir}`);
    return ledger;
  }

  /** Rewrites one migration's file (removes it once the migration holds nothing); drops idle migrations now and then. */
  save(ledger: StepLedger, migrationId: string): void {
    try {
      const s = ledger.snapshotOf(migrationId);
      const file = this.fileOf(migrationId);
      ensurePrivateDir(path.dirname(this.dir));
      ensurePrivateDir(this.dir);
      if (s.entries.length + s.fences.length + s.closed.length === 0) rmSync(file, { force: true });
      else writePrivateFileAtomic(file, JSON.stringify(s));
    } catch (e) {
      this.log.error(`cannot save the step ledger of migration ${migrationId} to ${this.dir}: ${(e as Error).message}`);
    }
    this.pruneSoon(ledger);
  }

  fileOf(migrationId: string): string {
    // ids come from validated commands; checked again, as a path is made of it
    if (!isUuid(migrationId)) throw new Error(`not a migration id: ${JSON.stringify(migrationId).slice(0, 80)}`);
    return path.join(this.dir, `${migrationId}.json`);
  }

  /**
   * At most once a minute, and after the change's own write and reply (setImmediate): the migrations idle
   * past the ledger's retention leave it, and their files go. A busy host drops a few at a time.
   */
  private pruneSoon(ledger: StepLedger): void {
    const now = Date.now();
    if (now - this.lastPrune < pruneEveryMs) return;
    this.lastPrune = now;
    setImmediate(() => {
      for (const id of ledger.prune()) {
        try {
          rmSync(this.fileOf(id), { force: true });
        } catch (e) {
          this.log.error(`cannot remove the step ledger's file of migration ${id}: ${(e as Error).message}`);
        }
      }
    });
  }

  private names(): string[] {
    try {
      return readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  private readSingleFile(): LedgerSnapshot | undefined {
    const read = readJsonFile(this.singleFile, LedgerSnapshotSchema);
    if (read.kind === 'ok') return read.value;
    if (read.kind === 'invalid') this.setAside(this.singleFile, `the step ledger ${this.singleFile} is invalid (${read.reason}); its migrations' records are not read`);
    return undefined;
  }

  private setAside(file: string, why: string): void {
    const aside = `${file}.invalid-${Date.now()}`;
    try {
      renameSync(file, aside);
    } catch {
      // leave it: the next change of that migration writes over it
    }
    this.log.error(`${why}; kept as ${aside}`);
  }
}

/** Why a migration's file cannot be read as that migration's (a record of another one in it), or undefined. */
function foreign(s: LedgerSnapshot, migrationId: string): string | undefined {
  const other = [...s.entries, ...s.fences, ...s.closed].find((x) => x.migrationId !== migrationId);
  return other ? `it holds a record of migration ${other.migrationId}` : undefined;
}
