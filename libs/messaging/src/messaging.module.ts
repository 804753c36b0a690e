import { DynamicModule, Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { EventContract, EventDataOf, CloudEvent } from '@flexmig/contracts';
import { NatsBus } from './nats-bus';

export const SERVICE_NAME = Symbol('SERVICE_NAME');

/** Publishes this service's events with its CloudEvents `source`. */
@Injectable()
export class EventPublisher {
  constructor(
    private readonly bus: NatsBus,
    @Inject(SERVICE_NAME) private readonly service: string,
  ) {}

  /** `traceparent`: the trace the event belongs to, when it is not the active one (an event sent after its request ended). */
  publish<C extends EventContract>(contract: C, data: EventDataOf<C>, opts: { id: string; subject?: string; time?: Date; traceparent?: string }): Promise<CloudEvent<EventDataOf<C>>> {
    return this.bus.publishEvent(contract, data, { ...opts, source: `/flexmig/${this.service}` });
  }

  /** Whether NATS is connected now (`NatsBus.reachable`). */
  get reachable(): boolean {
    return this.bus.reachable;
  }

  /** Calls `listener` after every reconnect to NATS (`NatsBus.onReconnect`). */
  onReconnect(listener: () => void): () => void {
    return this.bus.onReconnect(listener);
  }
}

@Injectable()
class BusCloser implements OnApplicationShutdown {
  constructor(private readonly bus: NatsBus) {}
  async onApplicationShutdown(): Promise<void> {
    await this.bus.close();
  }
}

/**
 * The process's one NATS connection, made before Nest starts (so that a missing NATS is reported plainly
 * at boot) and shared by DI and the transport.
 */
@Global()
@Module({})
export class MessagingModule {
  static forBus(bus: NatsBus, serviceName: string): DynamicModule {
    return {
      module: MessagingModule,
      providers: [{ provide: NatsBus, useValue: bus }, { provide: SERVICE_NAME, useValue: serviceName }, EventPublisher, BusCloser],
      exports: [NatsBus, EventPublisher, SERVICE_NAME],
    };
  }
}
