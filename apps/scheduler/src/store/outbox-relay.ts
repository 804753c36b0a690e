import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { eventContract, eventRefusal, isUuid } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { Coalesced, Repeats } from '@flexmig/timing';
import { prepared, runPrepared } from '@flexmig/persistence';
import { OutboxEntity } from '../entities';
import { eventsDeadLettered } from '../metrics';
import { DirectPublisher } from './direct-publisher';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';

/** One PostgreSQL advisory lock serialises the outbox relay, so events leave in the order they were committed. */
const OUTBOX_LOCK = 0x666c786f;
/** Under load, events committed within this window leave in one batch (fewer relay transactions). */
const outboxBatchWindowMs = 10;
const batchSize = 200;

/**
 * How long another replica's outbox rows are left to its DirectPublisher: it publishes them from memory at
 * once, and deletes them with the next statement it sends anyway (at the latest its next tick's flush). A
 * row older than this was left behind (a crash, a lost connection) and any relay takes it.
 */
export const outboxHandOffMs = (reconcileIntervalMs: number): number => Math.max(5_000, 3 * reconcileIntervalMs);

/**
 * The rows a flush publishes now, in commit order. Left alone: the events this replica's DirectPublisher
 * is sending or has sent ($1); for the hand-off time ($4 ms), the rows of the migrations it publishes ($5)
 * and those another replica wrote ($3 is this replica); and anything of a migration (subject) after a row
 * left alone, so that each migration's events keep their order. Past the hand-off time a row is anyone's:
 * whatever kept its publisher from it (a crash, a throw between commit and publish), it goes out.
 */
const ROWS_TO_PUBLISH = prepared(
  'scheduler_outbox_rows_to_publish',
  `
  WITH rows AS (
    SELECT seq, event_id, type, subject, data, created_at,
      event_id = ANY($1::text[])
        OR (created_at > now() - make_interval(secs => $4::double precision / 1000) AND (subject = ANY($5::text[]) OR (writer IS NOT NULL AND writer <> $3))) AS left_alone
    FROM outbox),
  firsts AS (SELECT subject, min(seq) AS first FROM rows WHERE left_alone GROUP BY subject)
  SELECT r.seq, r.event_id AS "eventId", r.type, r.subject, r.data, r.created_at AS "createdAt"
  FROM rows r LEFT JOIN firsts f ON f.subject = r.subject
  WHERE NOT r.left_alone AND (f.first IS NULL OR r.seq < f.first)
  ORDER BY r.seq LIMIT $2`,
);

const TRY_OUTBOX_LOCK = prepared('scheduler_try_outbox_lock', 'SELECT pg_try_advisory_xact_lock($1) AS locked');
const DELETE_SENT_BY_ID = prepared('scheduler_outbox_delete_by_id', 'DELETE FROM outbox WHERE event_id = ANY($1::text[])');
const DELETE_SENT_BY_SEQ = prepared('scheduler_outbox_delete_by_seq', 'DELETE FROM outbox WHERE seq = ANY($1::bigint[])');
const OUTBOX_SIZE = prepared(
  'scheduler_outbox_size',
  'SELECT (SELECT count(*) FROM outbox)::int AS waiting, (SELECT count(*) FROM outbox_dead_letter)::int AS "deadLettered"',
);

/**
 * Publishes the events that transitions committed to the outbox and that the DirectPublisher did not (a
 * migration claimed from another replica, a publish that failed, a crash). Another replica's young rows
 * are left to its DirectPublisher (`outboxHandOffMs`): taken here too, they went out twice, which
 * JetStream drops by id but core NATS subscribers saw (472 of 2,000 migrations' terminal events in
 * bench/control-plane). `flushSoon()` keeps the others prompt; the reconcile tick calls `flush()` too, so
 * an event is never left behind by a failed try. Each flush also deletes the rows of the events the
 * DirectPublisher sent that no other statement took along.
 */
@Injectable()
export class OutboxRelay implements OnApplicationShutdown {
  private readonly log = new Logger('outbox');
  private readonly failures = new Repeats(this.log);
  private flushing = false;
  private stopped = false;
  private readonly unwatch: () => void;
  /** The first flush goes at once; requests that arrive while one runs (load) wait a moment and go together. */
  private readonly flushes = new Coalesced(
    () => this.flush().then(() => this.failures.recovered('the outbox relay')),
    (e) => this.failures.failed(`outbox not flushed yet (the next tick retries): ${(e as Error).message}`),
    { pauseMs: outboxBatchWindowMs },
  );

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly direct: DirectPublisher,
    @Inject(SCHEDULER_CONFIG) private readonly config: Pick<SchedulerConfig, 'schedulerId' | 'reconcileIntervalMs'>,
  ) {
    direct.onFallback(() => this.flushSoon());
    this.unwatch = bus.onReconnect(() => this.flushSoon()); // what waited through an outage, at once
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.unwatch();
    this.flushes.stop();
  }

  /** Publishes what the outbox holds, soon; a failure is logged and the next tick tries again. */
  flushSoon(): void {
    void this.flushes.request();
  }

  /**
   * Publishes the outbox in commit order, in batches: one replica at a time (an advisory lock; the
   * others skip), each batch's publishes in flight together (sent in order on one connection, so the
   * stream keeps that order), then deleted in one statement. A crash between publish and delete
   * re-publishes; JetStream drops the repeat by its message id. An event that breaks its contract (or
   * whose type is unknown) can never be published: it moves to `outbox_dead_letter`, with a metric and
   * an error in the log, in the same transaction, and the others go on. A publish that fails (NATS
   * away) leaves the whole batch for the next try. While NATS is disconnected it does nothing, holding no
   * transaction for publishes that can only time out: the reconnect flushes.
   */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let more = true; more && !this.stopped && this.bus.reachable; ) {
        more = await this.direct.deletingAcknowledged((sent) =>
          this.db.transaction(async (m) => {
            if (sent.length) await runPrepared(m, DELETE_SENT_BY_ID, [sent]);
            const [{ locked }] = await runPrepared<{ locked: boolean }>(m, TRY_OUTBOX_LOCK, [OUTBOX_LOCK]);
            if (!locked) return false;
            // what a DirectPublisher is sending, or sent and has not deleted yet, is left to it
            const held = this.direct.held();
            const rows = await runPrepared<OutboxEntity>(m, ROWS_TO_PUBLISH, [held.events, batchSize, this.config.schedulerId, outboxHandOffMs(this.config.reconcileIntervalMs), held.migrations]);
            if (rows.length === 0) return false;
            const dead: { seq: string; error: string }[] = [];
            const publishes: Promise<unknown>[] = [];
            const traces = await traceParentsOf(m, rows);
            for (const r of rows) {
              const refusal = eventRefusal(r.type, r.data);
              if (refusal) dead.push({ seq: r.seq, error: refusal });
              else {
                const traceparent = traces.get(r.subject);
                publishes.push(
                  this.bus.publishEvent(eventContract(r.type)!, r.data, { id: r.eventId, subject: r.subject, source: '/flexmig/scheduler', time: r.createdAt, ...(traceparent ? { traceparent } : {}) }),
                );
              }
            }
            await Promise.all(publishes);
            if (dead.length) await this.deadLetter(m, rows, dead);
            await runPrepared(m, DELETE_SENT_BY_SEQ, [rows.map((r) => r.seq)]);
            return rows.length === batchSize;
          }),
        );
      }
    } finally {
      this.flushing = false;
    }
  }

  /**
   * Events waiting to be published, and those held in `outbox_dead_letter` (for /metrics). The second is a
   * level, not a count of moves: it stays up until an operator deals with the rows, across restarts.
   */
  async backlog(): Promise<{ waiting: number; deadLettered: number }> {
    const [counts] = await runPrepared<{ waiting: number; deadLettered: number }>(this.db, OUTBOX_SIZE, []);
    return counts;
  }

  private async deadLetter(m: EntityManager, rows: OutboxEntity[], dead: { seq: string; error: string }[]): Promise<void> {
    await m.query(
      `INSERT INTO outbox_dead_letter (seq, event_id, type, subject, data, created_at, error)
       SELECT o.seq, o.event_id, o.type, o.subject, o.data, o.created_at, d.error
       FROM outbox o JOIN jsonb_to_recordset($1::jsonb) AS d(seq bigint, error text) ON d.seq = o.seq
       ON CONFLICT (seq) DO NOTHING`,
      [JSON.stringify(dead)],
    );
    for (const d of dead) {
      const r = rows.find((x) => x.seq === d.seq)!;
      eventsDeadLettered.inc({ type: r.type });
      this.log.error(`event ${r.eventId} (${r.type}) cannot be published and went to outbox_dead_letter: ${d.error}`);
    }
  }
}

/**
 * The trace each event belongs to: a migration's events (their subject is its id) carry the trace context
 * of the request that created it, as their CloudEvents `traceparent`, whenever they are published.
 */
async function traceParentsOf(m: EntityManager, rows: Pick<OutboxEntity, 'subject'>[]): Promise<Map<string, string>> {
  // only a UUID can name a migration; the others are left out here rather than cast, since comparing
  // `id::text` could use no index and read the whole table at every flush
  const ids = [...new Set(rows.map((r) => r.subject))].filter(isUuid);
  if (ids.length === 0) return new Map();
  const found = await runPrepared<{ id: string; trace_parent: string }>(m, TRACE_PARENTS, [ids]);
  return new Map(found.map((f) => [f.id, f.trace_parent]));
}
const TRACE_PARENTS = prepared('scheduler_trace_parents', 'SELECT id::text AS id, trace_parent FROM migrations WHERE id = ANY($1::uuid[]) AND trace_parent IS NOT NULL');
