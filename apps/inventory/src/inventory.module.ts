import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { NatsBus, MessagingModule } from '@flexmig/messaging';
import { initializeServiceDataSource, serviceDataSourceOptions } from '@flexmig/persistence';
import { HealthModule, READINESS_CHECKS } from '@flexmig/service-kit';
import { inventoryEntities } from './entities';
import { inventoryMigrations } from './migrations';
import { INVENTORY_CONFIG, InventoryConfig } from './config';
import { CpuCompatClient } from './cpu/cpu-compat.client';
import { ClustersService } from './clusters/clusters.service';
import { ClusterCpuPlans } from './clusters/cluster-cpu-plans';
import { ImcService } from './clusters/imc.service';
import { ImcController } from './clusters/imc.controller';
import { HostsService } from './hosts/hosts.service';
import { EventOutbox } from './events/event-outbox';
import { PlacementHosts } from './hosts/placement-hosts';
import { HeartbeatBatch } from './hosts/heartbeat-batch';
import { Hearing } from './hosts/hearing';
import { HeartbeatListener } from './hosts/heartbeat-listener';
import { VmsService } from './vms/vms.service';
import { VmCpuCheckService } from './vms/cpu-check.service';
import { ReservationsService } from './reservations/reservations.service';
import { ReservationNotifier } from './reservations/reservation-notifier';
import { ClustersController, HostsController, VmsController } from './http.controllers';
import { InventoryHandlers } from './nats.handlers';
import { MaintenanceService } from './hosts/maintenance.service';
import { MaintenanceController } from './hosts/maintenance.controller';
import { ReconciliationService } from './reconciliation/reconciliation.service';
import { ReconciliationController } from './reconciliation/reconciliation.controller';

export const INVENTORY_SCHEMA = 'inventory';

@Module({})
export class InventoryModule {
  static forRoot(opts: { bus: NatsBus; databaseUrl: string; databasePoolSize?: number; config: InventoryConfig }): DynamicModule {
    return {
      module: InventoryModule,
      imports: [
        MessagingModule.forBus(opts.bus, 'inventory'),
        TypeOrmModule.forRootAsync({
          // the schema migrations run once across replicas (a lock), not in initialize()
          useFactory: () =>
            serviceDataSourceOptions({
              url: opts.databaseUrl,
              schema: INVENTORY_SCHEMA,
              entities: inventoryEntities,
              migrations: inventoryMigrations,
              poolSize: opts.databasePoolSize,
            }),
          dataSourceFactory: (options) => initializeServiceDataSource(options!),
        }),
        HealthModule,
      ],
      controllers: [ClustersController, ImcController, HostsController, VmsController, InventoryHandlers, MaintenanceController, ReconciliationController],
      providers: [
        { provide: INVENTORY_CONFIG, useValue: opts.config },
        CpuCompatClient,
        ClustersService,
        ClusterCpuPlans,
        ImcService,
        EventOutbox,
        Hearing,
        HostsService,
        PlacementHosts,
        HeartbeatBatch,
        HeartbeatListener,
        VmsService,
        VmCpuCheckService,
        ReservationsService,
        ReservationNotifier,
        MaintenanceService,
        ReconciliationService,
        {
          provide: READINESS_CHECKS,
          inject: [DataSource],
          useFactory: (db: DataSource) => [{ name: 'postgres', check: async () => (await db.query('SELECT 1')).length === 1 }],
        },
      ],
    };
  }
}
