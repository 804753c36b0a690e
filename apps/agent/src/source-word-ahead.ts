import type { StepCommand } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import type { StreamEndWord } from './drivers/driver';
import { awaitSourceStreamEnd, type SourceStreamEndOptions } from './source-stream-end';

/** A word older than this is not used: step 6 asks again (it arrives within milliseconds of the stream's end). */
export const WORD_AHEAD_MAX_AGE_MS = 2_000;
/** Incoming copies remembered at once (a bound: each is forgotten at its step 6 or its destruction anyway). */
const MAX_PREPARED = 256;

interface Ask {
  /** Resolves to the word when it lets go, else to undefined. */
  word: Promise<StreamEndWord | undefined>;
  /** Once `word` resolved: the word, or null when it did not let go. */
  answer?: StreamEndWord | null;
  at: number;
  stop: AbortController;
}

interface Prepared {
  cmd: StepCommand;
  ask?: Ask;
}

/** What step 6 finds of the word asked ahead: the word itself, or the question still under way. */
export type WordAhead = { word: StreamEndWord } | { pending: Promise<StreamEndWord | undefined>; stop: () => void };

/**
 * The source's word on its stream (QueryStreamEnd), asked by the target as soon as its own copy's state
 * has loaded, ahead of its half of step 6, so that the word is usually here when that half arrives and the
 * guest starts with no round trip to the source inside its downtime (docs/switchover.md, "The source's
 * word asked ahead"). Only where the driver hears the load before step 6 (qemu: QEMU's `MIGRATION`
 * `completed` event); otherwise step 6 asks, as before.
 *
 * A word kept is as good as one asked at step 6: the source's `completed` is final for QEMU, and the only
 * thing that resumes that copy is the saga's rollback, which destroys this copy first (the word is then
 * forgotten with it, and a later step 6 is refused, its step 2 undone here), or a restarted source agent
 * that finds step 5 never recorded, in which case no step 6 is ever sent. Still, it is used at most once,
 * by step 6 of the same migration, within WORD_AHEAD_MAX_AGE_MS of the ask; any other answer (failed,
 * active, none) is not kept, and step 6 asks again: the rules that follow a refusal or silence stay step
 * 6's own. A question
 * still under way when step 6 arrives does not replace step 6's own (its waits run from step 6, as before);
 * whichever lets go first starts the guest (`firstToLetGo`).
 */
export class SourceWordsAhead {
  private readonly byMigration = new Map<string, Prepared>();

  constructor(
    private readonly bus: NatsBus,
    private readonly options: () => SourceStreamEndOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Step 2 prepared an incoming copy here for `cmd`'s migration: its source is the one to ask. */
  prepared(cmd: StepCommand): void {
    this.forget(cmd.migrationId);
    this.byMigration.set(cmd.migrationId, { cmd });
    if (this.byMigration.size > MAX_PREPARED) this.forget(this.byMigration.keys().next().value!);
  }

  /** The driver heard the incoming copy of `vmId` for `migrationId` load its whole state: ask the source now. */
  loaded(vmId: string, migrationId: string): void {
    const p = this.byMigration.get(migrationId);
    if (!p || p.ask || p.cmd.vm.id !== vmId) return;
    const stop = new AbortController();
    // asked as step 6 asks it (source-stream-end.ts); only a word that lets go is kept: a refusal or silence leaves step 6 to ask
    const ask: Ask = { word: Promise.resolve(undefined), at: this.now(), stop };
    ask.word = awaitSourceStreamEnd(this.bus, p.cmd, this.options(), stop.signal).then(
      (w) => {
        ask.answer = w.status === 'completed' || w.status === 'gone' ? w : null;
        return ask.answer ?? undefined;
      },
      () => {
        ask.answer = null;
        return undefined;
      },
    );
    p.ask = ask;
  }

  /**
   * Step 6 of `migrationId` on this target: the word asked ahead when it let go, or the question still under
   * way; undefined when none was asked, it did not let go, or it is too old (step 6 asks). Taken once: a
   * later attempt asks again.
   */
  take(migrationId: string): WordAhead | undefined {
    const ask = this.byMigration.get(migrationId)?.ask;
    this.byMigration.delete(migrationId);
    if (!ask || ask.answer === null) return undefined;
    if (this.now() - ask.at > WORD_AHEAD_MAX_AGE_MS) {
      ask.stop.abort('too old for step 6');
      return undefined;
    }
    return ask.answer ? { word: ask.answer } : { pending: ask.word, stop: () => ask.stop.abort('step 6 has its word') };
  }

  /** The migration's copy here is gone (destroyed by a compensation): nothing of it is kept. */
  forget(migrationId: string): void {
    this.byMigration.get(migrationId)?.ask?.stop.abort('the copy here is gone');
    this.byMigration.delete(migrationId);
  }
}

/**
 * Step 6's own question (`asked`) beside one asked ahead and still under way (`ahead`): the first word that
 * lets go, or `asked`'s outcome (its refusal, its silence) when `ahead` does not let go first.
 */
export function firstToLetGo(ahead: Promise<StreamEndWord | undefined>, asked: Promise<StreamEndWord>): Promise<StreamEndWord> {
  return new Promise<StreamEndWord>((resolve, reject) => {
    void ahead.then((word) => word && resolve(word));
    asked.then(resolve, reject);
  });
}
