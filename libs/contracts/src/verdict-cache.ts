import { createHash } from 'node:crypto';
import type { CpuVerdict, Verdict } from './cpu';
import type { RequestOf } from './define';

/** What a verdict depends on: cpu-compat's answer is a pure function of it (its catalog is built in). */
export type VerdictQuestion = RequestOf<typeof CpuVerdict>;

/**
 * How long an answer is kept: cpu-compat's answer to one question changes only when a release of it changes
 * its catalog, and such a release is heeded this long after it starts at most.
 */
export const VERDICT_MAX_AGE_MS = 60_000;

export interface VerdictCacheOptions {
  /** The newest this many questions are kept. */
  maxEntries?: number;
  /** An answer older than this is asked again ({@link VERDICT_MAX_AGE_MS} by default). */
  maxAgeMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** A question's answer as kept: asked `at`, and `settled` once it came. */
interface Kept {
  answer: Promise<Verdict>;
  at: number;
  settled?: Verdict;
}

/**
 * CPU verdicts asked once per distinct question. The scheduler's placement weighs every host of a cluster
 * (issue 11: placing one VM in a cluster of 1,000 hosts asked cpu-compat 1,000 times, though a fleet has a
 * handful of CPU kinds); inventory asks one for saga step 1 on every migration, and most ask a question
 * asked a moment before (the same baseline, the same target CPU). The answer depends only on the question,
 * so it is kept (the newest `maxEntries`, none longer than `maxAgeMs`); questions asked at the same time share
 * one request, and a failed request is forgotten.
 */
export class VerdictCache {
  private readonly answers = new Map<string, Kept>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly ask: (q: VerdictQuestion) => Promise<Verdict>,
    opts: VerdictCacheOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 4096;
    this.maxAgeMs = opts.maxAgeMs ?? VERDICT_MAX_AGE_MS;
    this.now = opts.now ?? Date.now;
  }

  /** `key`: the question's key when the caller has a cheaper one than {@link keyOf} (a feature set's digest), the same for the same question. */
  verdict(q: VerdictQuestion, key = VerdictCache.keyOf(q)): Promise<Verdict> {
    const known = this.answers.get(key);
    const at = this.now();
    if (known) {
      // the newest use last: Map keeps insertion order, so the first key is the least recently used
      this.answers.delete(key);
      if (at - known.at <= this.maxAgeMs) {
        this.answers.set(key, known);
        return known.answer;
      }
    }
    const asked = this.ask(q);
    const entry: Kept = { answer: asked, at };
    this.answers.set(key, entry);
    asked.then(
      (v) => {
        entry.settled = v;
      },
      () => {
        if (this.answers.get(key) === entry) this.answers.delete(key);
      },
    );
    while (this.answers.size > this.maxEntries) this.answers.delete(this.answers.keys().next().value!);
    return asked;
  }

  /**
   * The answer to `q` when one is kept, answered and young enough, without asking: for a caller that must not
   * wait on cpu-compat where it is (inventory's step 1 inside its transaction). Undefined otherwise.
   */
  known(q: VerdictQuestion, key = VerdictCache.keyOf(q)): Verdict | undefined {
    const entry = this.answers.get(key);
    if (!entry?.settled || this.now() - entry.at > this.maxAgeMs) return undefined;
    this.answers.delete(key);
    this.answers.set(key, entry);
    return entry.settled;
  }

  get size(): number {
    return this.answers.size;
  }

  /** Keys of one VM's questions about CPUs named by their feature set's digest (placement's). */
  static readonly keyBySet = keyBySet;

  /**
   * The same question whatever the order of its feature lists. A list already in order (inventory stores
   * hosts' features sorted) is not copied and sorted again.
   */
  static keyOf(q: VerdictQuestion): string {
    const h = createHash('sha256');
    h.update(`${q.baseline}\n${q.target.vendor}\n${inOrder(q.target.features).join(',')}\n`);
    h.update(q.vmFeatures ? inOrder(q.vmFeatures).join(',') : '-');
    return h.digest('base64');
  }
}

/**
 * Keys for the questions of one VM whose target CPUs are named by their feature set's digest (inventory's
 * `md5` of the sorted list, `inventory.host.placement-list`): the VM's part is hashed once, each host's is
 * its digest. They never equal a {@link VerdictCache.keyOf} key (base64 of a sha256, no spaces).
 */
function keyBySet(baseline: string, vmFeatures: readonly string[] | null | undefined): (vendor: string, featureSet: string) => string {
  const vmPart = vmFeatures ? createHash('sha256').update(inOrder(vmFeatures).join(',')).digest('base64') : '-';
  return (vendor, featureSet) => `set ${baseline} ${vendor} ${featureSet} ${vmPart}`;
}

/** The list itself when it is sorted already, else a sorted copy. */
function inOrder(list: readonly string[]): readonly string[] {
  for (let i = 1; i < list.length; i++) if (list[i - 1] > list[i]) return [...list].sort();
  return list;
}
