import { Module } from '@nestjs/common';
import { AdmissionModule } from '../admission/admission.module';
import { MigrationsApiModule } from '../migrations-api/migrations-api.module';
import { MigrationsService } from '../migrations-api/migrations.service';
import { EvacuationsController } from './evacuations.controller';
import { EvacuationFollowUp } from './evacuation-follow-up';
import { EvacuationsService } from './evacuations.service';
import { MIGRATION_REQUESTER, MigrationRequester } from './migration-requester';

/** Host maintenance: each VM of a host gets a migration through the ordinary admission, and another one when step 1 refuses its target. */
@Module({
  imports: [MigrationsApiModule, AdmissionModule],
  controllers: [EvacuationsController],
  providers: [
    EvacuationsService,
    EvacuationFollowUp,
    {
      provide: MIGRATION_REQUESTER,
      inject: [MigrationsService],
      useFactory: (m: MigrationsService): MigrationRequester => ({ request: (vmId, requestedBy, opts) => m.admitted({ vmId }, requestedBy, opts) }),
    },
  ],
})
export class EvacuationsModule {}
