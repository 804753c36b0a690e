import { Module } from '@nestjs/common';
import { ClusterSettingsController } from './cluster-settings.controller';
import { ClusterSettingsService } from './cluster-settings.service';

/** Per-cluster admission limits and migration policy (`/api/v1/clusters/:id/migration-settings`). */
@Module({
  controllers: [ClusterSettingsController],
  providers: [ClusterSettingsService],
  exports: [ClusterSettingsService],
})
export class SettingsModule {}
