import { MigrationInterface, QueryRunner } from 'typeorm';

/** Events that can never be published (outside their contract) leave the outbox for this table, so they block no other. */
export class OutboxDeadLetter1764170000000 implements MigrationInterface {
  name = 'OutboxDeadLetter1764170000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE outbox_dead_letter (
      seq bigint PRIMARY KEY,
      event_id text NOT NULL,
      type text NOT NULL,
      subject text NOT NULL,
      data jsonb NOT NULL,
      created_at timestamptz NOT NULL,
      dead_at timestamptz NOT NULL DEFAULT now(),
      error text NOT NULL)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE outbox_dead_letter');
  }
}
