import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { GetStepAttempt, ReplyOf, RequestOf } from '@flexmig/contracts';
import { MigrationEntity } from '../entities';

/** The scheduler's NATS side: what agents may ask of it (validated by the transport). */
@Controller()
export class SchedulerHandlers {
  constructor(@InjectDataSource() private readonly db: DataSource) {}

  /**
   * The attempt of a step this scheduler has issued, read from the persisted saga: the saga commits an
   * attempt before it sends its command, so any attempt an agent is asked about by the real scheduler is
   * here already. A plain read: it never waits on the row lock of a migration being advanced.
   */
  @MessagePattern(GetStepAttempt.subject)
  async stepAttempt(r: RequestOf<typeof GetStepAttempt>): Promise<ReplyOf<typeof GetStepAttempt>> {
    const row = await this.db.getRepository(MigrationEntity).findOne({ where: { id: r.migrationId }, select: { id: true, saga: true } });
    const attempt = row?.saga.steps.find((s) => s.step === r.step)?.attempt ?? 0;
    return { migrationId: r.migrationId, step: r.step, known: row !== null, attempt };
  }
}
