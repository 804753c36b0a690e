import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The replica that wrote an outbox row (its DirectPublisher may be publishing it from memory): another
 * replica's relay leaves such a row alone for a hand-off time (outbox-relay.ts). Rows written before this
 * column (NULL) are anyone's, as before.
 */
export class OutboxWriter1764230000000 implements MigrationInterface {
  name = 'OutboxWriter1764230000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE outbox ADD COLUMN writer text');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE outbox DROP COLUMN writer');
  }
}
