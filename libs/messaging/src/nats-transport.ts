import { Logger } from '@nestjs/common';
import { BaseRpcContext, CustomTransportStrategy, MessageHandler, Server } from '@nestjs/microservices';
import type { Subscription } from '@nats-io/transport-node';
import { lastValueFrom, isObservable } from 'rxjs';
import { contractForSubject, FlexmigError, ErrorCode } from '@flexmig/contracts';
import { NatsBus, Params } from './nats-bus';

/**
 * A NestJS transport over {@link NatsBus}: handlers are declared with `@MessagePattern(Contract.subject)`
 * (requests) or `@EventPattern(Contract.subject)` (messages), and this server subscribes them under the
 * deployment's prefix, fills per-host parameters (`agent.{hostId}.…`), validates every message against
 * its contract before the handler runs and every reply before it leaves.
 *
 * Why not Nest's built-in NATS transport: it wraps payloads in its own `{pattern, data, id}` envelope and
 * cannot fill subject parameters at runtime; flexmig's wire format is plain JSON so that agents and
 * other subscribers in any language can speak it.
 */
export class NatsContractTransport extends Server implements CustomTransportStrategy {
  private readonly log = new Logger(NatsContractTransport.name);
  private readonly subs: Subscription[] = [];

  constructor(
    private readonly bus: NatsBus,
    private readonly opts: { queue?: string; params?: Params } = {},
  ) {
    super();
  }

  listen(callback: (...optionalParams: unknown[]) => void): void {
    for (const [pattern, handler] of this.messageHandlers) {
      this.bind(pattern, handler);
    }
    callback();
  }

  private bind(pattern: string, handler: MessageHandler): void {
    const contract = contractForSubject(pattern);
    if (!contract) throw new Error(`@MessagePattern('${pattern}') names no contract in @flexmig/contracts`);
    const subject = this.bus.subscriptionSubject(contract.subject, this.opts.params);
    const invoke = async (data: unknown, natsSubject: string): Promise<unknown> => {
      const result = await handler(data, new BaseRpcContext([natsSubject]));
      const value = isObservable(result) ? await lastValueFrom(result, { defaultValue: undefined }) : result;
      return isObservable(value) ? lastValueFrom(value, { defaultValue: undefined }) : value;
    };

    if (contract.kind === 'request') {
      if (handler.isEventHandler) throw new Error(`${pattern} is a request: use @MessagePattern, not @EventPattern`);
      this.subs.push(
        this.bus.subscribeRaw(subject, this.opts.queue, (msg) => this.bus.answerRaw(contract, msg, (req) => invoke(req, msg.subject))),
      );
    } else {
      this.subs.push(
        this.bus.subscribe(contract, async (message, natsSubject) => {
          try {
            await invoke(message, natsSubject);
          } catch (e) {
            this.log.warn(`handling ${natsSubject} failed: ${(e as Error).message}`);
          }
        }, { params: this.opts.params, queue: this.opts.queue }),
      );
    }
    this.log.log(`listening on ${subject}${this.opts.queue ? ` (queue ${this.opts.queue})` : ''}`);
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs.length = 0;
  }

  on(): never {
    throw new FlexmigError(ErrorCode.Internal, 'NatsContractTransport has no status events');
  }

  unwrap<T>(): T {
    return this.bus as unknown as T;
  }
}
