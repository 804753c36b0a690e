import 'reflect-metadata'; // Reflect.getMetadata (its types too)
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { PATTERN_METADATA } from '@nestjs/microservices/constants.js';
import type { z } from 'zod';
import { contractForSubject, type MessageContract, type RequestContract } from '@flexmig/contracts';
import type { HttpRoute } from '../route-auth';

/** A controller class as Nest declares it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any constructor: the metadata is what is read
export type ControllerType = abstract new (...args: any[]) => unknown;

/** One HTTP route with the zod schemas its pipes validate its parts with (undefined: none). */
export interface HttpTarget extends HttpRoute {
  /** Each `:param` of the path, with its pipe's schema when it has one. */
  params: Record<string, z.ZodType | undefined>;
  query?: z.ZodType;
  body?: z.ZodType;
}

/** One NATS subject a service serves, with its contract (whose schema the bodies come from). */
export interface NatsTarget {
  contract: RequestContract | MessageContract;
  /** The handler that serves it, to name it in messages. */
  handler: string;
}

interface RouteArg {
  index: number;
  data?: unknown;
  pipes?: unknown[];
}

/** The schema of a service-kit ZodPipe (read by shape: the pipe keeps it as its `schema`). */
const schemaOfPipes = (pipes: unknown[] = []): z.ZodType | undefined =>
  pipes.map((p) => (p as { schema?: { safeParse?: unknown } })?.schema).find((s): s is z.ZodType => typeof s?.safeParse === 'function');

/**
 * Every HTTP route of the given controllers, with the schemas of its path parameters, query and body,
 * read from Nest's route-argument metadata (the `ZodPipe`s the handlers declare): the same walk as the
 * routes-require-their-role tests (`routesOf`: service-kit's), so a new route is fuzzed as soon as it exists.
 */
export function httpTargets(controllers: ControllerType[], routesOf: (controller: never) => HttpRoute[]): HttpTarget[] {
  return controllers.flatMap((controller) =>
    routesOf(controller as never).map((route) => {
      const method = route.handler.slice(route.handler.indexOf('.') + 1);
      const args = Object.entries((Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {}) as Record<string, RouteArg>);
      const of = (type: RouteParamtypes) => args.filter(([key]) => key.split(':')[0] === String(type)).map(([, a]) => a);
      const params: Record<string, z.ZodType | undefined> = {};
      for (const name of route.path.match(/:(\w+)/g) ?? []) params[name.slice(1)] = undefined;
      for (const a of of(RouteParamtypes.PARAM)) if (typeof a.data === 'string') params[a.data] = schemaOfPipes(a.pipes);
      const query = of(RouteParamtypes.QUERY).map((a) => schemaOfPipes(a.pipes)).find(Boolean);
      const body = of(RouteParamtypes.BODY).map((a) => schemaOfPipes(a.pipes)).find(Boolean);
      return { ...route, params, ...(query ? { query } : {}), ...(body ? { body } : {}) };
    }),
  );
}

/**
 * Every NATS subject the given controllers serve (`@MessagePattern` / `@EventPattern`), with its contract
 * from the registry of @flexmig/contracts. A pattern without a contract fails here, as it fails the transport.
 */
export function natsTargets(controllers: ControllerType[]): NatsTarget[] {
  return controllers.flatMap((controller) => {
    const proto = controller.prototype as Record<string, unknown>;
    return Object.getOwnPropertyNames(proto).flatMap((name) => {
      const fn = proto[name];
      if (typeof fn !== 'function') return [];
      const patterns = (Reflect.getMetadata(PATTERN_METADATA, fn) as unknown[] | undefined) ?? [];
      return patterns.map((pattern) => {
        const contract = contractForSubject(String(pattern));
        if (!contract) throw new Error(`${controller.name}.${name} serves ${String(pattern)}, which no contract in @flexmig/contracts defines`);
        return { contract, handler: `${controller.name}.${name}` };
      });
    });
  });
}

/** The schema a NATS target's bodies are drawn from. */
export const schemaOfNatsTarget = (t: NatsTarget): z.ZodType => (t.contract.kind === 'request' ? t.contract.request : t.contract.message);
