import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { CreateEvacuationSchema, EvacuationViewSchema, HostIdSchema, PageQuerySchema, UuidSchema } from '@flexmig/contracts';
import type { CreateEvacuation } from '@flexmig/contracts';
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, Caller, ErrorResponses, type Principal, Role, ZodPipe } from '@flexmig/service-kit';
import { EvacuationsService } from './evacuations.service';

const ListQuerySchema = z.object({ hostId: HostIdSchema.optional(), ...PageQuerySchema.shape }).strict();

@ApiTags('evacuations')
@Controller('api/v1/evacuations')
export class EvacuationsController {
  constructor(private readonly evacuations: EvacuationsService) {}

  @Post()
  @Role('operator')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Evacuate a host: put it into maintenance and live-migrate every VM on it away, within the migration limits. ' +
      'Answers 202 once a migration was asked for each VM (or the reason it cannot move recorded); follow it with GET.',
  })
  @ApiZodBody(CreateEvacuationSchema)
  @ApiZodResponse(202, EvacuationViewSchema, 'the evacuation')
  @ErrorResponses(400, 404, 409, 503)
  create(@Body(new ZodPipe(CreateEvacuationSchema)) body: CreateEvacuation, @Caller() caller: Principal) {
    return this.evacuations.create(body.hostId, caller.sub);
  }

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: 'Evacuations, newest first, a page at a time (limit, cursor); filter by host.' })
  @ApiZodQuery(ListQuerySchema)
  @ApiZodList(EvacuationViewSchema, 'a page of evacuations')
  @ErrorResponses(400)
  list(@Query(new ZodPipe(ListQuerySchema, 'query')) q: z.infer<typeof ListQuerySchema>) {
    return this.evacuations.page(q);
  }

  @Get(':id')
  @Role('viewer')
  @ApiOperation({ summary: 'An evacuation: its state, counts, and per VM its migration, target host, or why it could not move.' })
  @ApiZodResponse(200, EvacuationViewSchema, 'the evacuation')
  @ErrorResponses(400, 404)
  get(@Param('id', new ZodPipe(UuidSchema, 'evacuation id')) id: string) {
    return this.evacuations.get(id);
  }
}
