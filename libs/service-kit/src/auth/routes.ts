import { type DynamicModule, RequestMethod, type Type } from '@nestjs/common';
import { METHOD_METADATA, MODULE_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { MetadataScanner } from '@nestjs/core';
import { ROUTE_ACCESS, type RouteAccess } from './roles';
import { ConfigurationError } from './auth-settings';

/** One HTTP route of a controller, with the access it declares (undefined: none, which is refused). */
export interface HttpRoute {
  method: string;
  /** e.g. `/api/v1/clusters/:id/imc` */
  path: string;
  access: RouteAccess | undefined;
  /** `Controller.method`, to name it in messages. */
  handler: string;
}

const asList = (p: unknown): string[] => (Array.isArray(p) ? p.map(String) : [p === undefined ? '' : String(p)]);
const join = (...parts: string[]) => `/${parts.flatMap((p) => p.split('/')).filter(Boolean).join('/')}`;

/** The HTTP routes of one controller class, read from Nest's route metadata and ours. */
export function routesOf(controller: Type): HttpRoute[] {
  const proto = controller.prototype as Record<string, unknown>;
  const bases = asList(Reflect.getMetadata(PATH_METADATA, controller));
  return new MetadataScanner().getAllMethodNames(proto).flatMap((name) => {
    const fn = proto[name] as object;
    const method = Reflect.getMetadata(METHOD_METADATA, fn) as RequestMethod | undefined;
    if (method === undefined) return []; // not an HTTP route (a NATS handler, a helper)
    const access = Reflect.getMetadata(ROUTE_ACCESS, fn) as RouteAccess | undefined;
    return bases.flatMap((base) =>
      asList(Reflect.getMetadata(PATH_METADATA, fn)).map((p) => ({ method: RequestMethod[method], path: join(base, p), access, handler: `${controller.name}.${name}` })),
    );
  });
}

/**
 * The controllers a module declares, with those of the modules it imports (a static walk of the module
 * definitions: no Nest application, no database). What tests enumerate to check every route.
 */
export function controllersOfModule(root: Type | DynamicModule, seen = new Set<unknown>()): Type[] {
  if (!root || seen.has(root)) return [];
  seen.add(root);
  const dynamic = (root as DynamicModule).module ? (root as DynamicModule) : undefined;
  const cls = dynamic ? dynamic.module : (root as Type);
  const own = [...((Reflect.getMetadata(MODULE_METADATA.CONTROLLERS, cls) as Type[] | undefined) ?? []), ...(dynamic?.controllers ?? [])];
  const imports = [...((Reflect.getMetadata(MODULE_METADATA.IMPORTS, cls) as unknown[] | undefined) ?? []), ...(dynamic?.imports ?? [])];
  const nested = imports
    .filter((i): i is Type | DynamicModule => typeof i === 'function' || (typeof i === 'object' && i !== null && 'module' in i))
    .flatMap((i) => controllersOfModule(i, seen));
  return [...new Set([...own, ...nested])];
}

/** Every HTTP route of a root module, from the routes' own metadata (no application is made): what the tests enumerate. */
export function httpRoutesOfModule(module: Type | DynamicModule): HttpRoute[] {
  return controllersOfModule(module).flatMap(routesOf);
}

/**
 * Fails closed at start: a route that declares no access (`@Role(...)` or `@Public()`) would be refused at
 * every call, so the service refuses to start and names it; and a service without HTTP authentication
 * settings (the agent) may serve public routes only.
 */
export function assertEveryRouteDeclaresAccess(routes: HttpRoute[], authConfigured: boolean): void {
  const undeclared = routes.filter((r) => r.access === undefined);
  if (undeclared.length) {
    throw new ConfigurationError(
      `HTTP routes without a role (give each @Role('viewer' | 'operator' | 'admin') or @Public()): ${undeclared.map((r) => `${r.method} ${r.path} (${r.handler})`).join(', ')}`,
    );
  }
  const guarded = routes.filter((r) => r.access !== 'public');
  if (!authConfigured && guarded.length) {
    throw new ConfigurationError(`routes that need a role but no HTTP authentication settings (ServiceSpec.auth): ${guarded.map((r) => `${r.method} ${r.path}`).join(', ')}`);
  }
}
