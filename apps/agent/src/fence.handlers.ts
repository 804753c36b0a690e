import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { FenceMigration, ReplyOf, RequestOf } from '@flexmig/contracts';
import { MigrationStepsService } from './migration-steps.service';

/** `agent.<HOST_ID>.migration.fence`: the scheduler closes a migration an operator resolved. */
@Controller()
export class FenceHandlers {
  constructor(private readonly steps: MigrationStepsService) {}

  @MessagePattern(FenceMigration.subject)
  fence(r: RequestOf<typeof FenceMigration>): Promise<ReplyOf<typeof FenceMigration>> {
    return this.steps.fence(r);
  }
}
