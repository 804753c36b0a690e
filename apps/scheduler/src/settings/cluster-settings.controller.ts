import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ClusterSettingsSchema, UuidSchema } from '@flexmig/contracts';
import { ApiZodBody, ApiZodResponse, apiSchema, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { ClusterSettingsInput, ClusterSettingsInputSchema, ClusterSettingsService } from './cluster-settings.service';

apiSchema('ClusterSettingsInput', ClusterSettingsInputSchema);

@ApiTags('migration settings')
@Controller('api/v1/clusters/:clusterId/migration-settings')
export class ClusterSettingsController {
  constructor(private readonly settings: ClusterSettingsService) {}

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: "A cluster's admission limits and migration policy (its own values over the scheduler's defaults)." })
  @ApiZodResponse(200, ClusterSettingsSchema, 'the effective settings and the overrides')
  @ErrorResponses(400)
  get(@Param('clusterId', new ZodPipe(UuidSchema, 'cluster id')) clusterId: string) {
    return this.settings.get(clusterId);
  }

  @Put()
  @Role('admin')
  @ApiOperation({
    summary:
      "Set a cluster's limits (maxOutboundPerHost, maxInboundPerHost, maxPerCluster; 0 = unlimited) and policy (downtimeLimitMs, bandwidthMiBps, completionTimeoutPerGiBSec, progressTimeoutSec, autoConverge, postCopy). Replaces what the cluster had set.",
  })
  @ApiZodBody(ClusterSettingsInputSchema)
  @ApiZodResponse(200, ClusterSettingsSchema, 'the settings as they now are')
  @ErrorResponses(400)
  put(@Param('clusterId', new ZodPipe(UuidSchema, 'cluster id')) clusterId: string, @Body(new ZodPipe(ClusterSettingsInputSchema)) body: ClusterSettingsInput) {
    return this.settings.put(clusterId, body);
  }
}
