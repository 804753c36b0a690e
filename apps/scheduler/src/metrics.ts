import { Counter, Gauge, Histogram } from 'prom-client';

/** What an SRE watches of the scheduler, on /metrics (Prometheus). */
export const migrationsFinished = new Counter({
  name: 'flexmig_migrations_finished_total',
  help: 'Migrations that reached a terminal state, by outcome (completed, rolled-back, cancelled, failed-needs-attention).',
  labelNames: ['outcome'],
});

export const migrationDuration = new Histogram({
  name: 'flexmig_migration_duration_seconds',
  help: 'Total time of completed migrations, from step 1 to commit.',
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
});

export const migrationDowntime = new Histogram({
  name: 'flexmig_migration_downtime_seconds',
  help: 'Downtime of completed migrations as the guest saw it (source paused to target resumed).',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5],
});

export const stepDuration = new Histogram({
  name: 'flexmig_migration_step_duration_seconds',
  help: 'Duration of each completed saga step, by step name.',
  labelNames: ['step'],
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
});

export const migrationsByState = new Gauge({
  name: 'flexmig_migrations',
  help: 'Migrations not yet finished, by state (queued, running, compensating), as this replica last counted them.',
  labelNames: ['state'],
});

export const outboxBacklog = new Gauge({
  name: 'flexmig_outbox_events_waiting',
  help: 'Events committed but not yet published to JetStream, as this replica last counted them.',
});

export const outboxDeadLettered = new Gauge({
  name: 'flexmig_outbox_events_dead_lettered',
  help: 'Events held in the outbox_dead_letter table: never published, so consumers missed them. Stays up until an operator deletes the rows (docs/events.md).',
});

export const eventsDeadLettered = new Counter({
  name: 'flexmig_events_dead_lettered_total',
  help: 'Events that broke their contract (or had an unknown type) and went to the outbox_dead_letter table instead of JetStream.',
  labelNames: ['type'],
});

export const evacuationPlacedAgain = new Counter({
  name: 'flexmig_evacuation_vms_placed_again_total',
  help: "VMs of an evacuation asked for again after step 1 refused their target, by what came of it: 'migration' (a new one, or one already under way, followed), 'no-host' (placement found none), 'later' (a failure of the moment; the next look asks again).",
  labelNames: ['outcome'],
});
