import type { Command } from 'commander';
import { stringify } from 'yaml';
import { parseEventId, parseEventTypes } from '../args';
import { action, optionParser } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import type { SseMessage } from '../sse';
import { eventLine } from '../views';

/** Without --follow: the replay is over when no stored event came for this long. */
const REPLAY_IDLE_MS = 1_500;
/** With --follow: wait this long before reconnecting a stream the server ended. */
const RECONNECT_MS = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `events [--follow]`: the live events (SSE GET /api/v1/events), one per line (NDJSON with -o json). */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('events: the stored ones after --since (default: from the start), and with --follow the new ones as they come')
    .option('--types <list>', 'comma-separated types or families: migration.completed,host.*,migration.progress', optionParser(parseEventTypes))
    .option('--since <id>', 'start after this event id (the id printed with each event)', optionParser(parseEventId))
    .option('--follow', 'keep streaming new events until interrupted (reconnects where it left off)')
    .action(
      action(async (ctx, opts: { types?: string; since?: string; follow?: boolean }) => {
        const route = `/api/v1/events${opts.types ? `?types=${encodeURIComponent(opts.types)}` : ''}`;
        const print = (m: SseMessage) => {
          const record = { id: m.id ?? null, type: m.event, data: m.data };
          const text = ctx.format === 'json' ? JSON.stringify(record) : ctx.format === 'yaml' ? `---\n${stringify(record).trimEnd()}` : `${m.id ?? '-'}  ${eventLine(m)}`;
          ctx.stdout.write(`${text}\n`);
        };
        // the stream's event ids are JetStream sequences from 1: "after 0" is from the first event it keeps
        let lastId = opts.since ?? (opts.follow ? undefined : '0');
        for (;;) {
          const abort = new AbortController();
          let idle: NodeJS.Timeout | undefined;
          const armIdle = () => {
            if (opts.follow) return;
            clearTimeout(idle);
            idle = setTimeout(() => abort.abort(), REPLAY_IDLE_MS);
          };
          const stream = await ctx.api.stream(route, { lastEventId: lastId, signal: abort.signal });
          if (!stream) throw new CliError(`GET ${route}: this server has no live events stream (404): FLEXMIG_URL must be the console (apps/console), e.g. http://127.0.0.1:3000`, ExitCode.Refused);
          armIdle();
          try {
            for await (const m of stream) {
              print(m);
              if (m.id) lastId = m.id;
              armIdle();
            }
          } finally {
            clearTimeout(idle);
            abort.abort();
          }
          if (!opts.follow) return;
          await sleep(RECONNECT_MS);
        }
      }),
    );
}
