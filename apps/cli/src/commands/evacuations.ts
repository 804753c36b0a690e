import type { Command } from 'commander';
import type { EvacuationView, MigrationView } from '@flexmig/contracts';
import type { ApiClient } from '../client';
import { action } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { LiveLine } from '../live-line';
import { evacuationView } from '../views';

/** How often `evacuate --wait` looks at the evacuation and its moving VMs' migrations. */
const POLL_INTERVAL_MS = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The percent of each moving VM's migration (its latest progress sample). */
async function percents(api: ApiClient, e: EvacuationView): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const moving = e.vms.filter((v) => v.outcome === 'moving' && v.migrationId);
  for (const v of moving) {
    const m = await api.get<MigrationView>(`/api/v1/migrations/${v.migrationId}`);
    if (typeof m.progress?.percent === 'number') out.set(v.migrationId!, m.progress.percent);
  }
  return out;
}

/** `evacuate HOST [--wait]`, `evacuations`: moving every VM off a host. */
export function registerEvacuations(program: Command): void {
  program
    .command('evacuate')
    .description('put a host into maintenance and live-migrate every VM on it away; --wait shows progress per VM (exit 1 if one does not move)')
    .argument('<host>', 'host id')
    .option('--wait', 'follow it to the end, VM by VM')
    .action(
      action(async (ctx, hostId: string, opts: { wait?: boolean }) => {
        let e = await ctx.api.post<EvacuationView>('/api/v1/evacuations', { hostId });
        if (opts.wait) {
          const line = new LiveLine(ctx.live);
          for (let last = ''; ; await sleep(POLL_INTERVAL_MS)) {
            e = await ctx.api.get<EvacuationView>(`/api/v1/evacuations/${e.id}`);
            const p = await percents(ctx.api, e);
            const text = evacuationView(e, (id) => p.get(id));
            // per VM: outcome and migration state (and, off a terminal, percent in tens) decide what is new
            const key = JSON.stringify(e.vms.map((v) => [v.outcome, v.migrationState, v.migrationId ? Math.floor((p.get(v.migrationId) ?? 0) / 10) : 0]));
            if (key !== last) line.note(text);
            last = key;
            if (e.state !== 'running') break;
          }
        }
        // with --wait, a table was printed as it changed, the last one included
        if (!opts.wait || ctx.format !== 'table') ctx.print(e, () => evacuationView(e));
        if (opts.wait && e.state !== 'completed') {
          throw new CliError(`evacuation ${e.id} of ${hostId} ended ${e.state}: ${e.counts.failed} failed, ${e.counts.notMoved} not moved (see the reasons above)`, ExitCode.Failed);
        }
      }),
    );

  program
    .command('evacuations')
    .description('evacuations, newest first')
    .option('--host <host>', 'only those of this host')
    .action(
      action(async (ctx, opts: { host?: string }) => {
        const es = await ctx.api.list<EvacuationView>('/api/v1/evacuations', { hostId: opts.host });
        ctx.print(es, () => (es.length ? es.map((e) => evacuationView(e)).join('\n\n') : 'no evacuations'));
      }),
    );
}
