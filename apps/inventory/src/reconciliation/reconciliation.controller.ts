import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { ReconciliationReportSchema } from '@flexmig/contracts';
import { ApiZodResponse, Role } from '@flexmig/service-kit';
import { ReconciliationService } from './reconciliation.service';

@ApiTags('reconciliation')
@Controller('api/v1/reconciliation')
export class ReconciliationController {
  constructor(private readonly reconciliation: ReconciliationService) {}

  @Get()
  @Role('viewer')
  @ApiOperation({
    summary:
      'Where inventory and the agents disagree, as the last reconciliation pass saw it: VMs orphaned (an agent runs one inventory has no record of there), ' +
      'missing (recorded running, no agent holds it) and split brains (held on two hosts; the copies that are not the record are paused).',
  })
  @ApiZodResponse(200, ReconciliationReportSchema, 'the findings of the last pass')
  report() {
    return this.reconciliation.report();
  }
}
