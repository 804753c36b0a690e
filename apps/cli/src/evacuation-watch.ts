import type { EvacuationView, MigrationProgress, MigrationView } from '@flexmig/contracts';
import type { ApiClient } from './client';
import { LiveLine } from './live-line';
import { evacuationView } from './views';

/** How often the fallback polls the evacuation (and its moving VMs' migrations). */
export const EVACUATION_POLL_MS = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Follows an evacuation to its end, VM by VM: outcome, migration state, target and progress bar. Reads the
 * console's live stream of the evacuation (SSE GET /api/v1/evacuations/:id/events: the events and progress
 * samples of the migrations it started); when the server has none, or it ends early, polls
 * GET /api/v1/evacuations/:id and each moving VM's migration.
 */
export class EvacuationWatcher {
  private readonly line: LiveLine;
  private readonly percent = new Map<string, number>();
  private lastKey = '';
  via: 'stream' | 'polling' = 'stream';

  constructor(
    private readonly api: ApiClient,
    out: NodeJS.WriteStream,
  ) {
    this.line = new LiveLine(out);
  }

  async follow(id: string): Promise<EvacuationView> {
    try {
      const ended = await this.stream(id);
      if (ended) return ended;
      this.via = 'polling';
      this.line.note('  (no live stream from this server: following the evacuation by polling)');
      return await this.poll(id);
    } finally {
      this.line.end();
    }
  }

  private async stream(id: string): Promise<EvacuationView | undefined> {
    const abort = new AbortController();
    const messages = await this.api.stream(`/api/v1/evacuations/${id}/events`, { signal: abort.signal });
    if (!messages) return undefined;
    try {
      // what happened before the stream opened: the evacuation as it is now
      let e = await this.load(id);
      this.show(e);
      if (e.state !== 'running') return e;
      for await (const m of messages) {
        if (m.event === 'migration.progress') {
          const p = m.data as MigrationProgress;
          this.percent.set(p.migrationId, p.percent);
        } else {
          e = await this.load(id);
        }
        this.show(e);
        if (e.state !== 'running') return e;
      }
      return undefined;
    } finally {
      abort.abort();
    }
  }

  private async poll(id: string): Promise<EvacuationView> {
    for (;;) {
      const e = await this.load(id);
      for (const v of e.vms.filter((x) => x.outcome === 'moving' && x.migrationId)) {
        const m = await this.api.get<MigrationView>(`/api/v1/migrations/${v.migrationId}`);
        if (typeof m.progress?.percent === 'number') this.percent.set(v.migrationId!, m.progress.percent);
      }
      this.show(e);
      if (e.state !== 'running') return e;
      await sleep(EVACUATION_POLL_MS);
    }
  }

  private load(id: string): Promise<EvacuationView> {
    return this.api.get<EvacuationView>(`/api/v1/evacuations/${id}`);
  }

  /** The table again when something changed: a VM's outcome or migration state, or its progress by 10 %. */
  private show(e: EvacuationView): void {
    const key = JSON.stringify([e.state, e.vms.map((v) => [v.outcome, v.migrationState, v.migrationId ? Math.floor((this.percent.get(v.migrationId) ?? 0) / 10) : 0])]);
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.line.note(evacuationView(e, (mid) => this.percent.get(mid)));
  }
}
