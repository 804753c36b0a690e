import { DynamicModule, Global, Module } from '@nestjs/common';
import { SCHEDULER_CONFIG, SchedulerConfig } from './config';
import { DbClock } from './db-clock';
import { LeaseFence } from './engine/lease-fence';
import { MigrationStore } from './store/migration-store';
import { OutboxRelay } from './store/outbox-relay';
import { DirectPublisher } from './store/direct-publisher';

/**
 * What every feature module of the scheduler shares: its configuration, PostgreSQL's clock, the one
 * store that writes migrations, the fence that knows which leases it holds, and the outbox's two publishers.
 */
@Global()
@Module({})
export class SchedulerCoreModule {
  static forRoot(config: SchedulerConfig): DynamicModule {
    return {
      module: SchedulerCoreModule,
      providers: [{ provide: SCHEDULER_CONFIG, useValue: config }, { provide: LeaseFence, useValue: new LeaseFence(config.leaseTtlMs) }, DbClock, MigrationStore, DirectPublisher, OutboxRelay],
      exports: [SCHEDULER_CONFIG, LeaseFence, DbClock, MigrationStore, DirectPublisher, OutboxRelay],
    };
  }
}
