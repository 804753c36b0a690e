import { Body, Controller, Param, Put } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HostIdSchema, HostSchema, ReplyOf, RequestOf, SetHostMaintenance, SetMaintenanceSchema } from '@flexmig/contracts';
import type { SetMaintenance } from '@flexmig/contracts';
import { ApiZodBody, ApiZodResponse, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { MaintenanceService } from './maintenance.service';

/** Host maintenance over HTTP (operators) and NATS (the scheduler's evacuations). */
@ApiTags('hosts')
@Controller('api/v1/hosts')
export class MaintenanceController {
  constructor(private readonly maintenance: MaintenanceService) {}

  @Put(':id/maintenance')
  @Role('operator')
  @ApiOperation({
    summary:
      'Put a host into maintenance (it takes no new VMs nor incoming migrations; the VMs on it keep running) or take it out. ' +
      "To move its VMs away too, use the scheduler's POST /api/v1/evacuations.",
  })
  @ApiZodBody(SetMaintenanceSchema)
  @ApiZodResponse(200, HostSchema, 'the host')
  @ErrorResponses(400, 404)
  set(@Param('id', new ZodPipe(HostIdSchema, 'host id')) id: string, @Body(new ZodPipe(SetMaintenanceSchema)) body: SetMaintenance) {
    return this.maintenance.set(id, body.maintenance);
  }

  @MessagePattern(SetHostMaintenance.subject)
  async setOverNats(r: RequestOf<typeof SetHostMaintenance>): Promise<ReplyOf<typeof SetHostMaintenance>> {
    return { host: await this.maintenance.set(r.hostId, r.maintenance) };
  }
}
