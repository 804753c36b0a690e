import { Module } from '@nestjs/common';
import { MigrationsApiModule } from '../migrations-api/migrations-api.module';
import { MigrationsService } from '../migrations-api/migrations.service';
import { EvacuationsController } from './evacuations.controller';
import { EvacuationsService } from './evacuations.service';
import { MIGRATION_REQUESTER, MigrationRequester } from './migration-requester';

/** Host maintenance: each VM of a host gets a migration through the ordinary admission. */
@Module({
  imports: [MigrationsApiModule],
  controllers: [EvacuationsController],
  providers: [
    EvacuationsService,
    {
      provide: MIGRATION_REQUESTER,
      inject: [MigrationsService],
      useFactory: (m: MigrationsService): MigrationRequester => ({ request: (vmId, requestedBy, opts) => m.admitted({ vmId }, requestedBy, opts) }),
    },
  ],
})
export class EvacuationsModule {}
