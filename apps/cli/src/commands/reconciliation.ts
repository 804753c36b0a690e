import { Option, type Command } from 'commander';
import { MAX_PAGE_LIMIT, type ReconciliationReport, ReconciliationKindSchema } from '@flexmig/contracts';
import { action } from '../context';
import { reconciliationView } from '../views';

/** `reconciliation [--kind K]`: where inventory and the agents disagree, as the last pass saw it. */
export function registerReconciliation(program: Command): void {
  program
    .command('reconciliation')
    .description('where inventory and the agents disagree (orphaned, missing, split-brain VMs), as the last reconciliation pass saw it')
    .addOption(new Option('--kind <kind>', 'only the findings of this kind').choices(ReconciliationKindSchema.options))
    .action(
      action(async (ctx, opts: { kind?: string }) => {
        const report = await wholeReport(ctx.api.pages<ReconciliationReport>('/api/v1/reconciliation', { kind: opts.kind, limit: String(MAX_PAGE_LIMIT) }));
        ctx.print(report, () => reconciliationView(report, opts.kind));
      }),
    );
}

/** The report with the findings of every page: the summary as the last page gave it (the freshest). */
async function wholeReport(pages: AsyncIterable<ReconciliationReport>): Promise<ReconciliationReport> {
  const items: ReconciliationReport['items'] = [];
  let last: ReconciliationReport | undefined;
  for await (const page of pages) {
    items.push(...page.items);
    last = page;
  }
  return { ...last!, items, nextCursor: null };
}
