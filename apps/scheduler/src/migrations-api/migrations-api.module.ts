import { Module } from '@nestjs/common';
import { AdmissionModule } from '../admission/admission.module';
import { EngineModule } from '../engine/engine.module';
import { PlacementModule } from '../placement/placement.module';
import { SettingsModule } from '../settings/settings.module';
import { MigrationsController } from './migrations.controller';
import { MigrationsService } from './migrations.service';
import { ResolutionController } from '../resolution/resolution.controller';
import { ResolutionService } from '../resolution/resolution.service';
import { PredictionService } from '../prediction/prediction.service';

/** `/api/v1/migrations`: request (checks, placement, admission), read, cancel, and resolve one that needs attention. */
@Module({
  imports: [AdmissionModule, EngineModule, PlacementModule, SettingsModule],
  controllers: [MigrationsController, ResolutionController],
  providers: [MigrationsService, ResolutionService, PredictionService],
  exports: [MigrationsService],
})
export class MigrationsApiModule {}
