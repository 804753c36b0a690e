import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { MessagingModule, NatsBus } from '@flexmig/messaging';
import { initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { HealthModule, READINESS_CHECKS } from '@flexmig/service-kit';
import { schedulerEntities } from './entities';
import { schedulerMigrations } from './migrations';
import { SchedulerConfig } from './config';
import { SchedulerCoreModule } from './core.module';
import { MigrationsApiModule } from './migrations-api/migrations-api.module';
import { AdmissionModule } from './admission/admission.module';
import { PlacementModule } from './placement/placement.module';
import { EvacuationsModule } from './evacuations/evacuations.module';
import { SettingsModule } from './settings/settings.module';
import { EngineModule } from './engine/engine.module';

export const SCHEDULER_SCHEMA = 'scheduler';

/** The scheduler: one feature module each for the migrations API, admission, placement, evacuations, settings and the engine. */
@Module({})
export class SchedulerModule {
  static forRoot(opts: { bus: NatsBus; databaseUrl: string; config: SchedulerConfig }): DynamicModule {
    return {
      module: SchedulerModule,
      imports: [
        MessagingModule.forBus(opts.bus, 'scheduler'),
        TypeOrmModule.forRootAsync({
          // the schema migrations run once across replicas (a lock), not in initialize()
          useFactory: () =>
            serviceDataSourceOptions({ url: opts.databaseUrl, schema: SCHEDULER_SCHEMA, entities: schedulerEntities, migrations: schedulerMigrations }),
          dataSourceFactory: (options) => initializeServiceDataSource(options!),
        }),
        HealthModule,
        SchedulerCoreModule.forRoot(opts.config),
        MigrationsApiModule,
        AdmissionModule,
        PlacementModule,
        EvacuationsModule,
        SettingsModule,
        EngineModule,
      ],
      providers: [
        {
          provide: READINESS_CHECKS,
          inject: [DataSource],
          useFactory: (db: DataSource) => [{ name: 'postgres', check: async () => (await db.query('SELECT 1')).length === 1 }],
        },
      ],
    };
  }
}
