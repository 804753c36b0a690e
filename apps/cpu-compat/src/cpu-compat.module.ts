import { DynamicModule, Module } from '@nestjs/common';
import { MessagingModule, NatsBus } from '@flexmig/messaging';
import { HealthModule } from '@flexmig/service-kit';
import { CpuCompatService } from './cpu-compat.service';
import { CpuHttpController, CpuNatsHandlers } from './cpu-compat.controllers';

@Module({})
export class CpuCompatModule {
  static forRoot(bus: NatsBus): DynamicModule {
    return {
      module: CpuCompatModule,
      imports: [MessagingModule.forBus(bus, 'cpu-compat'), HealthModule],
      controllers: [CpuHttpController, CpuNatsHandlers],
      providers: [CpuCompatService],
    };
  }
}
