import { Module } from '@nestjs/common';
import { AdmissionModule } from '../admission/admission.module';
import { EngineModule } from '../engine/engine.module';
import { PlacementModule } from '../placement/placement.module';
import { SettingsModule } from '../settings/settings.module';
import { MigrationsController } from './migrations.controller';
import { MigrationsService } from './migrations.service';

/** `/api/v1/migrations`: request (checks, placement, admission), read, cancel. */
@Module({
  imports: [AdmissionModule, EngineModule, PlacementModule, SettingsModule],
  controllers: [MigrationsController],
  providers: [MigrationsService],
  exports: [MigrationsService],
})
export class MigrationsApiModule {}
