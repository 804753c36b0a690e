import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { CancelMigrationSchema, CreateMigrationSchema, MigrationPredictionSchema, MigrationStateSchema, MigrationViewSchema, PageQuerySchema, PredictMigrationSchema, UuidSchema } from '@flexmig/contracts';
import type { CreateMigration, PredictMigration } from '@flexmig/contracts';
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, Caller, ErrorResponses, type Principal, Role, ZodPipe } from '@flexmig/service-kit';
import { MigrationsService } from './migrations.service';
import { PredictionService } from '../prediction/prediction.service';

const ListQuerySchema = z.object({ vmId: UuidSchema.optional(), state: MigrationStateSchema.optional(), ...PageQuerySchema.shape }).strict();

@ApiTags('migrations')
@Controller('api/v1/migrations')
export class MigrationsController {
  constructor(
    private readonly migrations: MigrationsService,
    private readonly predictions: PredictionService,
  ) {}

  /**
   * Operator, like starting one: it has the VM's agent run QMP calc-dirty-rate against the running guest
   * (as cpu-check does), and it is what a caller about to start a migration asks. Viewers see the prediction
   * each migration recorded (GET). The body is the bounded, strict schema of POST /migrations.
   */
  @Post('predict')
  @Role('operator')
  @HttpCode(200)
  @ApiOperation({
    summary:
      "Predict a migration's total time and downtime before starting it: the target (chosen when none is given), the prediction, the levers that would make it converge, and the measured inputs with their age and origin.",
  })
  @ApiZodBody(PredictMigrationSchema)
  @ApiZodResponse(200, MigrationPredictionSchema, 'the prediction')
  @ErrorResponses(400, 404, 409, 422, 503)
  predict(@Body(new ZodPipe(PredictMigrationSchema)) body: PredictMigration) {
    return this.predictions.predict(body);
  }

  @Post()
  @Role('operator')
  @HttpCode(202)
  @ApiOperation({ summary: 'Live-migrate a VM to a target host. Answers 202 with the migration; follow it with GET.' })
  @ApiZodBody(CreateMigrationSchema)
  @ApiZodResponse(202, MigrationViewSchema, 'the accepted migration')
  @ErrorResponses(400, 404, 409, 422, 503)
  create(@Body(new ZodPipe(CreateMigrationSchema)) body: CreateMigration, @Caller() caller: Principal) {
    return this.migrations.create(body, caller.sub);
  }

  @Get()
  @Role('viewer')
  @ApiOperation({ summary: 'Migrations, newest first, a page at a time (limit, cursor); filter by VM or state.' })
  @ApiZodQuery(ListQuerySchema)
  @ApiZodList(MigrationViewSchema, 'a page of migrations')
  @ErrorResponses(400)
  list(@Query(new ZodPipe(ListQuerySchema, 'query')) q: z.infer<typeof ListQuerySchema>) {
    return this.migrations.page(q);
  }

  @Get(':id')
  @Role('viewer')
  @ApiOperation({ summary: 'A migration: its state, the nine steps with status and times, result or failure, live progress.' })
  @ApiZodResponse(200, MigrationViewSchema, 'the migration')
  @ErrorResponses(400, 404)
  get(@Param('id', new ZodPipe(UuidSchema, 'migration id')) id: string) {
    return this.migrations.get(id);
  }

  @Post(':id/cancel')
  @Role('operator')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel before the point of no return (step 7): the completed steps are undone in reverse.' })
  @ApiZodBody(CancelMigrationSchema)
  @ApiZodResponse(202, MigrationViewSchema, 'the migration, cancelling')
  @ErrorResponses(400, 404, 409)
  cancel(
    @Param('id', new ZodPipe(UuidSchema, 'migration id')) id: string,
    @Body(new ZodPipe(CancelMigrationSchema)) body: z.infer<typeof CancelMigrationSchema>,
    @Caller() caller: Principal,
  ) {
    return this.migrations.cancel(id, body.reason ?? 'cancelled by the operator', caller.sub);
  }
}
