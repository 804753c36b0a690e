import { applyDecorators, Controller, Get, Headers, Inject, Logger, Param, Query, Res } from '@nestjs/common';
import { ApiHeader, ApiOperation, ApiProduces, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { ServerResponse } from 'node:http';
import { ErrorCode, FlexmigError, isFlexmigError, LastEventIdSchema, LiveEventsQuerySchema, type LiveEventsQuery, liveEventTypes, liveTypeSelected, PROGRESS_EVENT_TYPE, UuidSchema } from '@flexmig/contracts';
import { ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { CONSOLE_CONFIG, type ConsoleConfig } from '../config';
import { type LiveEvent, LiveEvents, type LiveSelection, type LiveSubscription } from './live-events';
import { SseResponse } from './sse-response';
import { SchedulerLookup } from './scheduler-lookup';
import { StreamSlots } from './stream-slots';

/** How much earlier than a migration's creation (the scheduler's clock) its events are looked for (the NATS server's). */
const CLOCK_SKEW_MS = 60_000;
/** Every event of something created at `createdAt` is published after it: read from then on, early by the skew. */
const since = (createdAt: string) => new Date(Date.parse(createdAt) - CLOCK_SKEW_MS);

const resumeHeader = { name: 'last-event-id', required: false, description: 'Resume after this event (the `id` of the last one received): only later events are sent.' };

/** What every live stream declares: its role, that it answers text/event-stream, resumes, and how it refuses. */
const LiveStream = (summary: string) =>
  applyDecorators(
    Role('viewer'),
    ApiOperation({ summary }),
    ApiProduces('text/event-stream'),
    ApiHeader(resumeHeader),
    ApiResponse({
      status: 200,
      description:
        'Server-Sent Events: `event` is the type; `data` the whole CloudEvent as JSON (docs/events/schemas), or for migration.progress a progress sample; ' +
        '`id` (not on progress samples) is what Last-Event-ID resumes after.',
      content: { 'text/event-stream': { schema: { type: 'string' } } },
    }),
    ErrorResponses(400, 404, 503),
  );

/**
 * The live streams (Server-Sent Events) of libs/contracts/src/live.ts. Each stream takes a slot
 * (SSE_MAX_STREAMS) and holds an ordered consumer and maybe a progress subscription; all three are given
 * back when the client goes away or the events stream fails.
 */
@ApiTags('live')
@Controller('api/v1')
export class LiveEventsController {
  private readonly log = new Logger('live-streams');

  constructor(
    private readonly live: LiveEvents,
    private readonly scheduler: SchedulerLookup,
    private readonly slots: StreamSlots,
    @Inject(CONSOLE_CONFIG) private readonly config: ConsoleConfig,
  ) {}

  @Get('migrations/:id/events')
  @LiveStream("A migration's live stream (SSE): its events from the first, or after Last-Event-ID, and its progress samples.")
  async migration(
    @Param('id', new ZodPipe(UuidSchema, 'migration id')) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Headers('authorization') authorization: string | undefined,
    @Res() res: ServerResponse,
  ): Promise<void> {
    const afterSeq = this.resumeAfter(lastEventId);
    const migration = await this.scheduler.migration(id, authorization);
    await this.serve(res, { family: 'migration', keep: (e) => e.subject === id, progressOf: [id], afterSeq, replay: since(migration.createdAt) });
  }

  @Get('evacuations/:id/events')
  @LiveStream("An evacuation's live stream (SSE): the events and progress samples of the migrations it started, one per VM.")
  async evacuation(
    @Param('id', new ZodPipe(UuidSchema, 'evacuation id')) id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Headers('authorization') authorization: string | undefined,
    @Res() res: ServerResponse,
  ): Promise<void> {
    const afterSeq = this.resumeAfter(lastEventId);
    const evacuation = await this.scheduler.evacuation(id, authorization);
    // every migration of an evacuation is requested when it is created (queued within the limits)
    const ids = evacuation.vms.flatMap((v) => (v.migrationId ? [v.migrationId] : []));
    const followed = new Set(ids);
    await this.serve(res, { family: 'migration', keep: (e) => followed.has(e.subject ?? ''), progressOf: ids, afterSeq, replay: since(evacuation.createdAt) });
  }

  @Get('events')
  @LiveStream('Every live event (SSE), or those of `types`: new ones, or those after Last-Event-ID.')
  @ApiQuery({ name: 'types', required: false, description: `Comma-separated types or families (host.*): ${liveEventTypes().join(', ')}` })
  async events(
    @Query(new ZodPipe(LiveEventsQuerySchema, 'query')) q: LiveEventsQuery,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Res() res: ServerResponse,
  ): Promise<void> {
    const afterSeq = this.resumeAfter(lastEventId);
    const families = new Set((q.types ?? []).filter((t) => t !== PROGRESS_EVENT_TYPE).map((t) => t.split('.')[0]));
    await this.serve(res, {
      family: q.types && families.size === 1 ? [...families][0] : undefined,
      keep: (e) => liveTypeSelected(q.types, e.type),
      progressOf: liveTypeSelected(q.types, PROGRESS_EVENT_TYPE) ? '*' : undefined,
      afterSeq,
      replay: 'new',
    });
  }

  private resumeAfter(header: string | undefined): number | undefined {
    return header === undefined || header === '' ? undefined : new ZodPipe(LastEventIdSchema, 'Last-Event-ID header').transform(header);
  }

  /** Errors before the first byte are answered in the one error shape; after it, the stream just ends. */
  private async serve(res: ServerResponse, selection: LiveSelection): Promise<void> {
    const release = this.slots.take();
    let subscription: LiveSubscription | undefined;
    let sse: SseResponse | undefined;
    let closed = false;
    const early: LiveEvent[] = [];
    const send = (e: LiveEvent) => sse!.send({ id: e.id, event: e.type, data: e.data });
    const stop = () => {
      if (closed) return;
      closed = true;
      sse?.end();
      release();
      void subscription?.stop();
    };
    // the response closes when the client goes away (or the stream ended): give everything back
    res.on('close', stop);
    try {
      subscription = await this.live.open(selection, (e) => (sse ? send(e) : early.push(e)), (why) => {
        this.log.warn(`a live stream ended: ${why}`);
        sse?.comment(`${why}; reconnect with Last-Event-ID to resume`);
        stop();
      });
    } catch (e) {
      stop();
      throw isFlexmigError(e) ? e : new FlexmigError(ErrorCode.Unavailable, `the events stream cannot be read (${(e as Error).message}); retry`, { reason: 'events-unavailable' });
    }
    if (closed || res.destroyed) return stop();
    sse = new SseResponse(res, this.config.heartbeatMs);
    for (const e of early.splice(0)) send(e);
  }
}
