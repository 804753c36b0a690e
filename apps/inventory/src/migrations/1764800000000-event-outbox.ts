import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inventory's events are committed with the change they announce (docs/reconciliation.md, "Events with
 * their change"): a row here is written in the same transaction (or the same statement) as the host going
 * down or up, the host registering, the VM running or the cluster's mode changing, and `EventOutbox`
 * publishes it to JetStream afterwards, in `seq` order, then deletes it. A row whose event can never be
 * published (its type unknown, its data outside the contract, after an upgrade) keeps its reason in
 * `refused`, stays for an operator and holds nothing else back.
 */
export class EventOutbox1764800000000 implements MigrationInterface {
  name = 'EventOutbox1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE event_outbox (
      seq bigserial PRIMARY KEY,
      event_id text NOT NULL UNIQUE,
      type text NOT NULL,
      subject text NOT NULL,
      data jsonb NOT NULL,
      time timestamptz NOT NULL,
      traceparent text,
      refused text)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE event_outbox');
  }
}
