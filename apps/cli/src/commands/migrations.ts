import type { Command } from 'commander';
import type { MigrationPrediction, MigrationView } from '@flexmig/contracts';
import { action } from '../context';
import { CliError, ExitCode, migrationFailed } from '../exit-codes';
import { HISTORY_LIMIT, type HistoryOptions, readHistory, withHistoryOptions } from '../history';
import { findVm } from '../resolve';
import { migrationEndView, migrationStartView, migrationsTable, predictionLines } from '../views';
import { MigrationWatcher } from '../watch';

/** How often `migrations --watch` refreshes the list. */
const WATCH_INTERVAL_MS = 2_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A migration that ended otherwise than completed: exit 1, saying how. */
const failedEnd = (m: MigrationView) =>
  new CliError(`migration ${m.id} ended ${m.state}${m.failure ? `: step ${m.failure.step} ${m.failure.stepName}: ${m.failure.message}` : ''}`, ExitCode.Failed);

/** `migrate`, `predict`, `cancel`, `migrations`: the scheduler's live migrations. */
export function registerMigrations(program: Command): void {
  program
    .command('predict')
    .description("predict a VM's migration before starting it: total time, downtime, the levers if it would not converge, the measured inputs")
    .argument('<vm>', 'VM name or id')
    .option('--to <host>', 'target host (default: the one the scheduler would choose)')
    .action(
      action(async (ctx, key: string, opts: { to?: string }) => {
        const vm = await findVm(ctx.api, key);
        const p = await ctx.api.post<MigrationPrediction>('/api/v1/migrations/predict', { vmId: vm.id, ...(opts.to ? { targetHostId: opts.to } : {}) });
        ctx.print(p, () => [`VM ${vm.name} from ${p.sourceHostId} to ${p.targetHostId}${p.placement ? ` (chosen: ${p.placement.reason})` : ''}`, ...predictionLines(p)].join('\n'));
      }),
    );

  program
    .command('migrate')
    .description('live-migrate a VM; with --wait, show its progress to the end (exit 1 unless it completes)')
    .argument('<vm>', 'VM name or id')
    .option('--to <host>', 'target host (default: the scheduler chooses)')
    .option('--wait', 'follow it to the end: steps, live progress with a progress bar, then the figures')
    .action(
      action(async (ctx, key: string, opts: { to?: string; wait?: boolean }) => {
        const vm = await findVm(ctx.api, key);
        const started = await ctx.api.post<MigrationView>('/api/v1/migrations', { vmId: vm.id, ...(opts.to ? { targetHostId: opts.to } : {}) });
        if (!opts.wait) return ctx.print(started, () => migrationStartView(started));
        ctx.live.write(`${migrationStartView(started)}\n`);
        const ended = await new MigrationWatcher(ctx.api, ctx.live).follow(started.id);
        ctx.print(ended, () => migrationEndView(ended));
        if (migrationFailed(ended.state)) throw failedEnd(ended);
      }),
    );

  program
    .command('cancel')
    .description('cancel a migration before the point of no return (its completed steps are undone)')
    .argument('<migration>', 'migration id')
    .option('--reason <text>', 'why (recorded with the cancellation)')
    .option('--wait', 'follow it until it has rolled back')
    .action(
      action(async (ctx, id: string, opts: { reason?: string; wait?: boolean }) => {
        const r = await ctx.api.post<MigrationView>(`/api/v1/migrations/${encodeURIComponent(id)}/cancel`, opts.reason ? { reason: opts.reason } : {});
        if (!opts.wait) return ctx.print(r, () => `cancelling migration ${id}: ${r?.state ?? 'asked'}`);
        const ended = await new MigrationWatcher(ctx.api, ctx.live).follow(id);
        ctx.print(ended, () => migrationEndView(ended));
      }),
    );

  const migrationsList = program
    .command('migrations')
    .description(`migrations, newest first (the newest ${HISTORY_LIMIT} unless --limit or --all); --watch refreshes the list until interrupted`)
    .option('--vm <vm>', 'only those of this VM (name or id)')
    .option('--state <state>', 'only those in this state (queued, running, completed, rolled-back, cancelled, failed-needs-attention, ...)')
    .option('--watch', 'print the list again whenever it changes (Ctrl-C to stop)');
  withHistoryOptions(migrationsList).action(
    action(async (ctx, opts: { vm?: string; state?: string; watch?: boolean } & HistoryOptions) => {
      const vmId = opts.vm ? (await findVm(ctx.api, opts.vm)).id : undefined;
      const load = () => readHistory<MigrationView>(ctx, '/api/v1/migrations', { vmId, state: opts.state }, opts, 'migrations');
      let last = '';
      for (;;) {
        const { items: ms, note } = await load();
        const text = JSON.stringify(ms);
        if (text !== last) {
          if (opts.watch && ctx.format === 'table' && ctx.stdout.isTTY) ctx.stdout.write('\x1b[H\x1b[2J');
          ctx.print(ms, () => migrationsTable(ms));
          if (note) ctx.stderr.write(`${note}\n`);
          last = text;
        }
        if (!opts.watch) return;
        await sleep(WATCH_INTERVAL_MS);
      }
    }),
  );
}
