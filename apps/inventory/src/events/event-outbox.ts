import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { Counter, Gauge } from 'prom-client';
import { eventContract, type EventContract, type EventDataOf, eventRefusal, validationError } from '@flexmig/contracts';
import { EventPublisher, traceparentOf } from '@flexmig/messaging';
import { prepared, runPrepared } from '@flexmig/persistence';
import { Coalesced, Repeats } from '@flexmig/timing';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';

/** One PostgreSQL advisory lock serialises the replicas' relays, so events leave in the order they were written. */
const OUTBOX_LOCK = 0x666c6969;
/** Under load (VM creation), events written within this window leave in one batch. */
const batchWindowMs = 10;
const batchSize = 200;

/** The columns an event's row is written with, in the order of `outboxValues`. */
export const OUTBOX_COLUMNS = 'event_outbox (event_id, type, subject, data, time, traceparent)';

/** An event ready to be written as a row: its contract checked, its data as JSON text. */
export interface OutboxEvent {
  id: string;
  type: string;
  subject: string;
  data: string;
  time: Date;
  traceparent: string | null;
}

/**
 * The event as a row's values, its data checked against its contract first: an event that breaks it is
 * refused here, before anything is written, with the error a publish gives. The trace is the active one.
 */
export function outboxEvent<C extends EventContract>(contract: C, data: EventDataOf<C>, opts: { id: string; subject: string; time?: Date }): OutboxEvent {
  const checked = contract.data.safeParse(data);
  if (!checked.success) throw validationError(`event ${contract.type}`, checked.error);
  return { id: opts.id, type: contract.type, subject: opts.subject, data: JSON.stringify(checked.data), time: opts.time ?? new Date(), traceparent: traceparentOf() ?? null };
}

/** The values of `OUTBOX_COLUMNS`, for a statement that writes the row beside its change (`$n::jsonb` for the data). */
export const outboxValues = (e: OutboxEvent): unknown[] => [e.id, e.type, e.subject, e.data, e.time, e.traceparent];

const INSERT = prepared('inventory_outbox_insert', `INSERT INTO ${OUTBOX_COLUMNS} VALUES ($1, $2, $3, $4::jsonb, $5, $6) ON CONFLICT (event_id) DO NOTHING`);
const LOCK = prepared('inventory_outbox_lock', 'SELECT pg_advisory_xact_lock($1)');
const ROWS = prepared(
  'inventory_outbox_rows',
  // ordered by the column, not by the text it is read as ("10" < "9")
  'SELECT o.seq::text AS seq, event_id AS "eventId", type, subject, data, time, traceparent FROM event_outbox o WHERE refused IS NULL ORDER BY o.seq LIMIT $1',
);
const DELETE = prepared('inventory_outbox_delete', 'DELETE FROM event_outbox WHERE seq = ANY($1::bigint[])');
const REFUSE = prepared('inventory_outbox_refuse', 'UPDATE event_outbox SET refused = $2 WHERE seq = $1');
const WAITING = prepared('inventory_outbox_waiting', 'SELECT count(*) FILTER (WHERE refused IS NULL)::int AS waiting, count(*) FILTER (WHERE refused IS NOT NULL)::int AS refused FROM event_outbox');

interface Row {
  seq: string;
  eventId: string;
  type: string;
  subject: string;
  data: unknown;
  time: Date;
  traceparent: string | null;
}

const eventsWaiting = new Gauge({
  name: 'flexmig_inventory_outbox_events_waiting',
  help: "Inventory's events committed but not yet published to JetStream, as this replica last counted them.",
});
const eventsRefusedHeld = new Gauge({
  name: 'flexmig_inventory_outbox_events_refused',
  help: "Inventory's events kept in inventory.event_outbox because no contract accepts them: never published, so consumers missed them. Stays up until an operator deletes the rows (docs/events.md).",
});
const eventsRefused = new Counter({
  name: 'flexmig_inventory_events_refused_total',
  help: "Inventory's events that broke their contract (or had an unknown type): kept in inventory.event_outbox with the reason, never published.",
  labelNames: ['type'],
});

/**
 * Inventory's events, written with their change and published after it commits. A change and its event
 * are one transaction (`add`, or a statement that writes `OUTBOX_COLUMNS` itself), so an event is never
 * published for a change that rolled back, nor lost for one that committed: a crash, a NATS outage or a
 * failed publish leaves the row, and the next flush sends it. `committed()` asks for a flush at once; a
 * timer (every HOST_CHECK_INTERVAL_MS) and the start of the process flush what is left.
 *
 * A flush takes an advisory lock (one replica at a time), publishes a batch in `seq` order (in flight
 * together on one connection, so the stream keeps that order) and deletes it in one statement, then
 * commits. A crash between the publish and the commit publishes the batch again: JetStream drops the
 * repeats by their id (`Nats-Msg-Id`). Events of one host, VM or cluster are written under that row's
 * lock, so they leave in the order they happened. While NATS is disconnected a flush does nothing (no
 * transaction held open for a publish that can only time out); the reconnect flushes at once.
 */
@Injectable()
export class EventOutbox implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('events');
  private readonly failures = new Repeats(this.log);
  private timer?: NodeJS.Timeout;
  private unwatch?: () => void;
  private stopped = false;
  private readonly flushes = new Coalesced(
    () => this.flush().then(() => this.failures.recovered("publishing inventory's events")),
    (e) => this.failures.failed(`events not published yet (the next flush tries again within ${this.config.hostCheckIntervalMs} ms): ${(e as Error).message}`),
    { pauseMs: batchWindowMs },
  );

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly events: EventPublisher,
    @Inject(INVENTORY_CONFIG) private readonly config: Pick<InventoryConfig, 'hostCheckIntervalMs'>,
  ) {}

  onApplicationBootstrap(): void {
    void this.committed(); // what an earlier process left
    this.unwatch = this.events.onReconnect(() => void this.committed()); // what waited through an outage
    this.timer = setInterval(() => {
      void this.committed()
        .then(() => this.backlog())
        .catch(() => undefined); // the database away: the flush said so already
    }, this.config.hostCheckIntervalMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.unwatch?.();
    clearInterval(this.timer);
    this.flushes.stop();
  }

  /** Writes the event in the change's transaction (`m`); it is published once that commits and `committed()` is called. */
  async add<C extends EventContract>(m: EntityManager, contract: C, data: EventDataOf<C>, opts: { id: string; subject: string; time?: Date }): Promise<void> {
    await runPrepared(m, INSERT, outboxValues(outboxEvent(contract, data, opts)));
  }

  /** After a commit that wrote events: publishes them soon (with others written meanwhile). Resolves once a flush that began after the call has ended; never rejects. */
  committed(): Promise<void> {
    return this.flushes.request();
  }

  /**
   * Publishes what the outbox holds, in order, batch after batch. A publish that fails leaves its batch (and
   * throws). While NATS is disconnected it does nothing: the reconnect calls it.
   */
  async flush(): Promise<void> {
    for (let more = true; more && !this.stopped && this.events.reachable; ) {
      more = await this.db.transaction(async (m) => {
        await runPrepared(m, LOCK, [OUTBOX_LOCK]);
        const rows = await runPrepared<Row>(m, ROWS, [batchSize]);
        if (rows.length === 0) return false;
        const sendable: Row[] = [];
        for (const r of rows) {
          const refusal = eventRefusal(r.type, r.data);
          if (!refusal) sendable.push(r);
          else {
            await runPrepared(m, REFUSE, [r.seq, refusal]);
            eventsRefused.inc({ type: r.type });
            this.log.error(`event ${r.eventId} (${r.type}) can never be published and stays in inventory.event_outbox with the reason: ${refusal}`);
          }
        }
        await Promise.all(
          sendable.map((r) =>
            this.events.publish(eventContract(r.type)!, r.data as never, { id: r.eventId, subject: r.subject, time: r.time, ...(r.traceparent ? { traceparent: r.traceparent } : {}) }),
          ),
        );
        await runPrepared(m, DELETE, [sendable.map((r) => r.seq)]);
        return rows.length === batchSize;
      });
    }
  }

  /** Events waiting to be published, and those refused (for /metrics and the tests). */
  async backlog(): Promise<{ waiting: number; refused: number }> {
    const [counts] = await runPrepared<{ waiting: number; refused: number }>(this.db, WAITING, []);
    eventsWaiting.set(counts.waiting);
    eventsRefusedHeld.set(counts.refused);
    return counts;
  }
}
