import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { MigrationResolutionSchema, ResolveMigrationSchema, UuidSchema } from '@flexmig/contracts';
import type { ResolveMigration } from '@flexmig/contracts';
import { ApiZodBody, ApiZodResponse, Caller, ErrorResponses, type Principal, Role, ZodPipe } from '@flexmig/service-kit';
import { ResolutionService } from './resolution.service';

@ApiTags('migrations')
@Controller('api/v1/migrations')
export class ResolutionController {
  constructor(private readonly resolutions: ResolutionService) {}

  @Post(':id/resolve')
  @Role('operator')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Close a migration that ended failed-needs-attention. flexmig asks both agents where the VM runs; when they cannot tell (both run it, ' +
      'neither does, or one cannot be asked) pass runsOn (422 RUNS_ON_REQUIRED otherwise); a runsOn the agents contradict is refused ' +
      '(409 RUNS_ON_CONTRADICTED, with what they said). The other copy is fenced (paused, never destroyed once it ran), inventory records ' +
      'the VM on the chosen host, and the resolution is recorded (GET shows it) and published as migration.resolved. The migration keeps ' +
      'its state. 409 when it is in another state or already resolved.',
  })
  @ApiZodBody(ResolveMigrationSchema)
  @ApiZodResponse(200, MigrationResolutionSchema, 'the resolution as recorded')
  @ErrorResponses(400, 404, 409, 422, 502, 503)
  resolve(
    @Param('id', new ZodPipe(UuidSchema, 'migration id')) id: string,
    @Body(new ZodPipe(ResolveMigrationSchema)) body: ResolveMigration,
    @Caller() caller: Principal,
  ) {
    return this.resolutions.resolve(id, body, caller.sub);
  }
}
