import type { MigrationProgress, MigrationView } from '@flexmig/contracts';
import { TERMINAL_MIGRATION_STATES } from '@flexmig/contracts';
import type { ApiClient } from './client';
import { LiveLine } from './live-line';
import { formatDuration } from './output';
import { progressLine } from './views';

/** How often the fallback polls GET /api/v1/migrations/:id (the agents sample progress about once a second). */
export const POLL_INTERVAL_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const isTerminal = (m: Pick<MigrationView, 'state'>) => TERMINAL_MIGRATION_STATES.includes(m.state);

/**
 * Follows one migration to its end and shows it as it goes: step changes as lines, the memory transfer
 * as a live progress line. Reads the console's live stream (SSE GET /api/v1/migrations/:id/events); when
 * the server has none, or it ends early, polls GET /api/v1/migrations/:id instead.
 */
export class MigrationWatcher {
  private readonly line: LiveLine;
  private readonly noted = new Set<string>();
  /** How the watch got its updates: for the user, and for tests. */
  via: 'stream' | 'polling' = 'stream';

  constructor(
    private readonly api: ApiClient,
    out: NodeJS.WriteStream,
  ) {
    this.line = new LiveLine(out);
  }

  async follow(id: string): Promise<MigrationView> {
    try {
      const ended = await this.stream(id);
      if (ended) return ended;
      this.via = 'polling';
      this.line.note('  (no live stream from this server: following the migration by polling)');
      return await this.poll(id);
    } finally {
      this.line.end();
    }
  }

  /** The migration once the stream showed it ended; undefined when there is no stream or it ended first. */
  private async stream(id: string): Promise<MigrationView | undefined> {
    const abort = new AbortController();
    const messages = await this.api.stream(`/api/v1/migrations/${id}/events`, { signal: abort.signal });
    if (!messages) return undefined;
    try {
      // the stream replays the migration's events from the first: what happened before it opened is shown too
      for await (const m of messages) {
        if (m.event === 'migration.progress') {
          this.showProgress(m.data as MigrationProgress);
          continue;
        }
        const view = await this.api.get<MigrationView>(`/api/v1/migrations/${id}`);
        this.showSteps(view);
        if (isTerminal(view)) return view;
      }
      return undefined;
    } finally {
      abort.abort();
    }
  }

  private async poll(id: string): Promise<MigrationView> {
    for (;;) {
      const view = await this.api.get<MigrationView>(`/api/v1/migrations/${id}`);
      this.showSteps(view);
      if (isTerminal(view)) return view;
      if (view.progress && typeof view.progress.percent === 'number') this.showProgress(view.progress as unknown as MigrationProgress);
      await sleep(POLL_INTERVAL_MS);
    }
  }

  private showSteps(view: MigrationView): void {
    for (const s of view.steps) {
      if (s.status === 'pending' || (s.status === 'running' && s.number !== view.currentStep?.number)) continue;
      // each step once per status it reaches (running, then completed; or failed, compensated...)
      const key = `${s.number}:${s.status}`;
      if (this.noted.has(key)) continue;
      this.noted.add(key);
      const took = s.status !== 'running' && s.durationMs !== null ? ` in ${formatDuration(s.durationMs)}` : '';
      this.line.note(`  step ${s.number} ${s.name}: ${s.status}${took}${s.error ? ` (${s.error.code}: ${s.error.message})` : ''}`);
    }
  }

  private showProgress(p: MigrationProgress): void {
    // off a terminal: a line per pass and per 10 %, not per sample
    this.line.update(`  ${progressLine(p)}`, `${p.step}:${p.pass}:${Math.floor(p.percent / 10)}`);
  }
}
