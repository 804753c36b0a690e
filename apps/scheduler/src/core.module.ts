import { DynamicModule, Global, Module } from '@nestjs/common';
import { SCHEDULER_CONFIG, SchedulerConfig } from './config';
import { DbClock } from './db-clock';
import { MigrationStore } from './store/migration-store';
import { OutboxRelay } from './store/outbox-relay';

/**
 * What every feature module of the scheduler shares: its configuration, PostgreSQL's clock, the one
 * store that writes migrations, and the outbox relay.
 */
@Global()
@Module({})
export class SchedulerCoreModule {
  static forRoot(config: SchedulerConfig): DynamicModule {
    return {
      module: SchedulerCoreModule,
      providers: [{ provide: SCHEDULER_CONFIG, useValue: config }, DbClock, MigrationStore, OutboxRelay],
      exports: [SCHEDULER_CONFIG, DbClock, MigrationStore, OutboxRelay],
    };
  }
}
