import type { Command } from 'commander';
import type { EvacuationView } from '@flexmig/contracts';
import { action } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { EvacuationWatcher } from '../evacuation-watch';
import { HISTORY_LIMIT, type HistoryOptions, readHistory, withHistoryOptions } from '../history';
import { evacuationView } from '../views';

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
        if (opts.wait) e = await new EvacuationWatcher(ctx.api, ctx.live).follow(e.id);
        // with --wait, a table was printed as it changed, the last one included
        if (!opts.wait || ctx.format !== 'table') ctx.print(e, () => evacuationView(e));
        if (opts.wait && e.state !== 'completed') {
          throw new CliError(`evacuation ${e.id} of ${hostId} ended ${e.state}: ${e.counts.failed} failed, ${e.counts.notMoved} not moved (see the reasons above)`, ExitCode.Failed);
        }
      }),
    );

  const evacuationsList = program
    .command('evacuations')
    .description(`evacuations, newest first (the newest ${HISTORY_LIMIT} unless --limit or --all)`)
    .option('--host <host>', 'only those of this host');
  withHistoryOptions(evacuationsList).action(
    action(async (ctx, opts: { host?: string } & HistoryOptions) => {
      const { items: es, note } = await readHistory<EvacuationView>(ctx, '/api/v1/evacuations', { hostId: opts.host }, opts, 'evacuations');
      ctx.print(es, () => (es.length ? es.map((e) => evacuationView(e)).join('\n\n') : 'no evacuations'));
      if (note) ctx.stderr.write(`${note}\n`);
    }),
  );
}
