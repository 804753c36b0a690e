import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { CancelMigrationSchema, CreateMigrationSchema, MigrationStateSchema, MigrationViewSchema, PageQuerySchema, UuidSchema } from '@flexmig/contracts';
import type { CreateMigration } from '@flexmig/contracts';
import { ApiZodBody, ApiZodList, ApiZodQuery, ApiZodResponse, Caller, ErrorResponses, type Principal, Role, ZodPipe } from '@flexmig/service-kit';
import { MigrationsService } from './migrations.service';

const ListQuerySchema = z.object({ vmId: UuidSchema.optional(), state: MigrationStateSchema.optional(), ...PageQuerySchema.shape }).strict();

@ApiTags('migrations')
@Controller('api/v1/migrations')
export class MigrationsController {
  constructor(private readonly migrations: MigrationsService) {}

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
