import { Controller, Get, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { PageQuerySchema, ReconciliationKindSchema, ReconciliationReportSchema } from '@flexmig/contracts';
import { ApiZodQuery, ApiZodResponse, ErrorResponses, Role, ZodPipe } from '@flexmig/service-kit';
import { ReconciliationService } from './reconciliation.service';

const ReconciliationQuerySchema = z.object({ kind: ReconciliationKindSchema.optional(), ...PageQuerySchema.shape }).strict();

@ApiTags('reconciliation')
@Controller('api/v1/reconciliation')
export class ReconciliationController {
  constructor(private readonly reconciliation: ReconciliationService) {}

  @Get()
  @Role('viewer')
  @ApiOperation({
    summary:
      'Where inventory and the agents disagree, as the last reconciliation pass saw it: VMs orphaned (an agent runs one inventory has no record of there), ' +
      'missing (recorded running, no agent holds it) and split brains (held on two hosts; the copies that are not the record are paused). ' +
      'The findings a page at a time (limit, cursor), by kind, VM and host; filter by kind.',
  })
  @ApiZodQuery(ReconciliationQuerySchema)
  @ApiZodResponse(200, ReconciliationReportSchema, 'the summary of the last pass and a page of its findings')
  @ErrorResponses(400)
  report(@Query(new ZodPipe(ReconciliationQuerySchema, 'query')) q: z.infer<typeof ReconciliationQuerySchema>) {
    return this.reconciliation.report(q);
  }
}
