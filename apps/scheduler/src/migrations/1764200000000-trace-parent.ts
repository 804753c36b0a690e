import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `trace_parent`: the W3C trace context of the request that created a migration (docs/observability.md).
 * The engine runs the steps later, from its reconcile loop: each step's span is a child of this one, and
 * the migration's events carry it as their CloudEvents `traceparent`, so one migration is one trace.
 * NULL when the request was not traced (OTEL_EXPORTER_OTLP_ENDPOINT unset), and for older migrations.
 */
export class TraceParent1764200000000 implements MigrationInterface {
  name = 'TraceParent1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations ADD COLUMN trace_parent text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE migrations DROP COLUMN trace_parent`);
  }
}
