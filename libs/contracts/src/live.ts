import { z } from 'zod';
import { allEventContracts } from './define';

/**
 * Live updates over HTTP (Server-Sent Events), served by the console: `GET /api/v1/migrations/:id/events`,
 * `GET /api/v1/evacuations/:id/events` and `GET /api/v1/events?types=…`. Each SSE message's `event` is a
 * CloudEvent type (its `data` the CloudEvent, its `id` the JetStream sequence of the events stream, which
 * a client sends back as `Last-Event-ID` to resume), or `migration.progress` (its `data` a
 * MigrationProgress sample from core NATS, with no `id`: samples are not stored, so they are not replayed).
 */
export const PROGRESS_EVENT_TYPE = 'migration.progress';

/** Every type a live stream may carry: the CloudEvent types of the contracts, and progress samples. */
export function liveEventTypes(): string[] {
  return [...allEventContracts().map((c) => c.type), PROGRESS_EVENT_TYPE].sort();
}

const familyOf = (type: string) => type.split('.')[0];

/**
 * `types`: a comma-separated list of event types (`migration.completed`) and families (`host.*`); absent,
 * every type. An unknown name is refused with the names that exist, so a typo is not a silent empty stream.
 */
export const LiveEventsQuerySchema = z.object({
  types: z
    .string()
    .max(2048)
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      const known = liveEventTypes();
      const families = new Set(known.map(familyOf));
      const names = raw.split(',').map((n) => n.trim()).filter(Boolean);
      const unknown = names.filter((n) => (n.endsWith('.*') ? !families.has(n.slice(0, -2)) : !known.includes(n)));
      if (unknown.length) {
        ctx.addIssue({ code: 'custom', message: `unknown event type ${unknown.join(', ')}; the types are ${known.join(', ')}, or a family such as host.*` });
        return z.NEVER;
      }
      return names;
    }),
});
export type LiveEventsQuery = z.infer<typeof LiveEventsQuerySchema>;

/**
 * `Last-Event-ID`: the JetStream sequence of the last event the client received (a positive integer), or 0
 * for "from the first event the stream still keeps" (sequences start at 1).
 */
export const LastEventIdSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,15})$/, 'the id of an event this stream sent (a positive integer), or 0 for every event kept')
  .transform(Number);

/** Does a stream asked for `types` (undefined: all) carry events of `type`? */
export function liveTypeSelected(types: readonly string[] | undefined, type: string): boolean {
  return types === undefined || types.some((t) => t === type || (t.endsWith('.*') && familyOf(type) === t.slice(0, -2)));
}
