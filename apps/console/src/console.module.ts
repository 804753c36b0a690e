import { DynamicModule, Module } from '@nestjs/common';
import { NatsBus } from '@flexmig/messaging';
import { HealthModule } from '@flexmig/service-kit';
import { CONSOLE_CONFIG, type ConsoleConfig } from './config';
import { LiveEvents } from './events/live-events';
import { LiveEventsController } from './events/live-events.controller';
import { SchedulerLookup } from './events/scheduler-lookup';
import { StreamSlots } from './events/stream-slots';
import { OpenApiController } from './openapi/openapi.controller';
import { ProxyController } from './routing/proxy.controller';
import { ServiceProxy } from './routing/service-proxy';
import { WebController } from './web/web.controller';

@Module({})
export class ConsoleModule {
  static forRoot(opts: { bus: NatsBus; config: ConsoleConfig }): DynamicModule {
    return {
      module: ConsoleModule,
      imports: [HealthModule],
      // Order matters: Express matches routes in the order they are registered. The proxy's /api/v1/*
      // must come after the console's own /api/v1 routes; the web console's pages (/, /assets, its client routes) last.
      controllers: [OpenApiController, LiveEventsController, ProxyController, WebController],
      providers: [{ provide: NatsBus, useValue: opts.bus }, { provide: CONSOLE_CONFIG, useValue: opts.config }, ServiceProxy, LiveEvents, SchedulerLookup, StreamSlots],
    };
  }
}
