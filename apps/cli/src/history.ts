import type { Command } from 'commander';
import { parsePositiveInt } from './args';
import { type Context, optionParser } from './context';

/** How many of a history's newest items `migrations` and `evacuations` show unless told otherwise. */
export const HISTORY_LIMIT = 100;

export interface HistoryOptions {
  limit: number;
  all?: boolean;
}

/**
 * `--limit N` and `--all` on a command that lists a history (migrations, evacuations): a list that only grows,
 * so by default the newest HISTORY_LIMIT, as `gh run list` or `git log -n` show the latest.
 */
export const withHistoryOptions = (cmd: Command): Command =>
  cmd
    .option('--limit <n>', `the newest n (default ${HISTORY_LIMIT})`, optionParser((v) => parsePositiveInt('--limit', v)), HISTORY_LIMIT)
    .option('--all', 'every one, however many (reads the whole history)');

/**
 * The newest items of a history as the options ask, and, when more were left out, a line that says so (for
 * stderr: stdout keeps only the list, whatever its format).
 */
export async function readHistory<T>(ctx: Context, route: string, query: Record<string, string | undefined>, opts: HistoryOptions, what: string): Promise<{ items: T[]; note?: string }> {
  if (opts.all) return { items: await ctx.api.list<T>(route, query) };
  const { items, more } = await ctx.api.first<T>(route, query, opts.limit);
  return more ? { items, note: `(the ${items.length} newest ${what}; --limit N for more, --all for every one)` } : { items };
}
