import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { MessagingModule, NatsBus } from '@flexmig/messaging';
import { serviceDataSourceOptions } from '@flexmig/persistence';
import { HealthModule, READINESS_CHECKS } from '@flexmig/service-kit';
import { schedulerEntities } from './entities';
import { schedulerMigrations } from './migrations';
import { SCHEDULER_CONFIG, SchedulerConfig } from './config';
import { StepExecutor } from './step-executor';
import { DbClock } from './db-clock';
import { MigrationEngine } from './migration-engine';
import { MigrationsService } from './migrations.service';
import { MigrationsController } from './migrations.controller';
import { SchedulerHandlers } from './nats.handlers';
import { ClusterSettingsService } from './cluster-settings.service';
import { ClusterSettingsController } from './cluster-settings.controller';
import { PlacementService } from './placement/placement.service';
import { EvacuationsService } from './evacuations/evacuations.service';
import { EvacuationsController } from './evacuations/evacuations.controller';
import { MIGRATION_REQUESTER, MigrationRequester } from './evacuations/migration-requester';
import { ResolutionService } from './resolution/resolution.service';
import { ResolutionController } from './resolution/resolution.controller';

export const SCHEDULER_SCHEMA = 'scheduler';

@Module({})
export class SchedulerModule {
  static forRoot(opts: { bus: NatsBus; databaseUrl: string; config: SchedulerConfig }): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [
        MessagingModule.forBus(opts.bus, 'scheduler'),
        TypeOrmModule.forRoot(
          serviceDataSourceOptions({ url: opts.databaseUrl, schema: SCHEDULER_SCHEMA, entities: schedulerEntities, migrations: schedulerMigrations }),
        ),
        HealthModule,
      ],
      controllers: [MigrationsController, ResolutionController, ClusterSettingsController, EvacuationsController, SchedulerHandlers],
      providers: [
        { provide: SCHEDULER_CONFIG, useValue: opts.config },
        StepExecutor,
        DbClock,
        MigrationEngine,
        MigrationsService,
        ClusterSettingsService,
        PlacementService,
        EvacuationsService,
        ResolutionService,
        {
          provide: MIGRATION_REQUESTER,
          inject: [MigrationsService],
          useFactory: (m: MigrationsService): MigrationRequester => ({ request: (vmId, requestedBy) => m.create({ vmId }, requestedBy) }),
        },
        {
          provide: READINESS_CHECKS,
          inject: [DataSource],
          useFactory: (db: DataSource) => [{ name: 'postgres', check: async () => (await db.query('SELECT 1')).length === 1 }],
        },
      ],
    };
  }
}
