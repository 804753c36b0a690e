import { Injectable, Logger } from '@nestjs/common';
import { eventContract } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import type { OutboxRow } from './outbox-rows';

/** What a committed transition hands over: its events (already in the outbox, committed) and when. */
export interface CommittedEvents {
  migrationId: string;
  rows: OutboxRow[];
  /** The transition's time (PostgreSQL's clock, as the store wrote it). */
  at: Date;
  traceParent?: string | null;
  /** The migration ended with this transition: nothing of it follows. */
  last: boolean;
}

/**
 * The outbox's fast path: a transition's events go to JetStream straight after their commit, from memory,
 * instead of being read back from the outbox by a relay transaction of their own. Their outbox rows stay
 * until JetStream has acknowledged them; then their ids wait here and the next statement this replica
 * sends anyway (a transition, an admission, the tick's flush) deletes them (`deletingAcknowledged`). So an
 * event costs no transaction of its own, and a crash at any point leaves its row for the relay, which
 * publishes it again (JetStream drops the repeat by its id).
 *
 * Order: the events of one migration leave one transition after the other (a chain per migration). Only a
 * migration whose every earlier event went out this way is published here (`adopt`, at admission): one
 * claimed from another replica, or one whose publish failed once, is left to the relay, which publishes
 * the outbox in commit order.
 */
@Injectable()
export class DirectPublisher {
  private readonly log = new Logger('outbox');
  /** Migrations whose events go out here; the others wait for the relay. */
  private readonly adopted = new Set<string>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Events being published here now: the relay leaves their rows alone. */
  private readonly sending = new Set<string>();
  /** Events JetStream acknowledged whose outbox rows are still to be deleted. */
  private acknowledged = new Set<string>();
  /** Acknowledged events whose rows a statement not yet committed deletes (`deletingAcknowledged`). */
  private readonly deleting = new Set<string>();
  /** Called when an event could not go out here: the relay takes over (flushSoon). */
  private fallback: () => void = () => undefined;

  constructor(private readonly bus: NatsBus) {}

  onFallback(fn: () => void): void {
    this.fallback = fn;
  }

  /** A migration this replica started: all of its events so far are in the outbox, none published yet. */
  adopt(migrationId: string): void {
    this.adopted.add(migrationId);
  }

  /** Publishes the committed events, after those of the migration's earlier transitions; returns at once. */
  publish(c: CommittedEvents): void {
    if (!this.adopted.has(c.migrationId)) {
      if (c.rows.length) this.fallback();
      return;
    }
    if (c.rows.length === 0) {
      if (c.last) this.adopted.delete(c.migrationId);
      return;
    }
    for (const r of c.rows) this.sending.add(r.event_id);
    const chain = (this.chains.get(c.migrationId) ?? Promise.resolve()).then(() => this.send(c));
    this.chains.set(c.migrationId, chain);
    void chain.then(() => {
      if (this.chains.get(c.migrationId) === chain) this.chains.delete(c.migrationId);
    });
  }

  private async send(c: CommittedEvents): Promise<void> {
    try {
      if (!this.adopted.has(c.migrationId)) throw new Error('an earlier event of this migration did not go out');
      await Promise.all(
        c.rows.map(async (r) => {
          const contract = eventContract(r.type);
          if (!contract) throw new Error(`unknown event type ${r.type}`);
          await this.bus.publishEvent(contract, r.data as never, {
            id: r.event_id,
            subject: r.subject,
            source: '/flexmig/scheduler',
            time: c.at,
            ...(c.traceParent ? { traceparent: c.traceParent } : {}),
          });
          this.acknowledged.add(r.event_id);
        }),
      );
    } catch (e) {
      // the relay publishes what is left of this migration, in commit order (and dead-letters what can never go)
      this.adopted.delete(c.migrationId);
      this.log.warn(`migration ${c.migrationId}: events not published at once (${(e as Error).message}); the outbox relay sends them`);
      this.fallback();
    } finally {
      for (const r of c.rows) this.sending.delete(r.event_id);
      if (c.last) this.adopted.delete(c.migrationId);
    }
  }

  /**
   * What this replica's relay must leave alone: the events being published here now, those JetStream
   * acknowledged whose rows are not deleted yet (or whose deletion is not committed yet), and every event
   * of the migrations published here (a transition's rows are committed a moment before `publish` is
   * called with them; taken by the relay in that moment, they went out twice).
   */
  held(): { events: string[]; migrations: string[] } {
    return { events: [...this.sending, ...this.acknowledged, ...this.deleting], migrations: [...this.adopted] };
  }

  /**
   * Runs `statement` with the acknowledged events whose outbox rows it is to delete, and keeps them held
   * until it has committed: a relay that read the outbox before that commit would see their rows and publish
   * them again. If the statement throws, they go back to the acknowledged set, for the next statement.
   * Every statement that deletes their rows goes through here, so none can forget either half.
   */
  async deletingAcknowledged<T>(statement: (ids: string[]) => Promise<T>): Promise<T> {
    const ids = this.takeAcknowledged();
    let result: T;
    try {
      result = await statement(ids);
    } catch (e) {
      this.giveBack(ids);
      throw e;
    }
    for (const id of ids) this.deleting.delete(id);
    return result;
  }

  private takeAcknowledged(): string[] {
    if (this.acknowledged.size === 0) return [];
    const ids = [...this.acknowledged];
    this.acknowledged = new Set();
    for (const id of ids) this.deleting.add(id);
    return ids;
  }

  private giveBack(ids: string[]): void {
    for (const id of ids) {
      this.deleting.delete(id);
      this.acknowledged.add(id);
    }
  }
}
