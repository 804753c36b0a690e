import { Module } from '@nestjs/common';
import { AdmissionModule } from '../admission/admission.module';
import { ActionRunner } from './action-runner';
import { LeaseKeeper } from './lease-keeper';
import { SchedulerHandlers } from './nats.handlers';
import { Reconciler } from './reconciler';
import { StepExecutor } from './step-executor';

/** The engine: the level-triggered reconciler that drives each migration's saga (see reconciler.ts). */
@Module({
  imports: [AdmissionModule],
  controllers: [SchedulerHandlers],
  providers: [StepExecutor, ActionRunner, LeaseKeeper, Reconciler],
  exports: [Reconciler],
})
export class EngineModule {}
