import type { INestApplication, Logger } from '@nestjs/common';
import { DiscoveryService, ModulesContainer, Reflector } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { ErrorsFilter } from './errors.filter';
import { httpSpans } from './observability/http-spans';
import { AuthGuard } from './auth/auth.guard';
import { bodyGate } from './auth/body-gate';
import { TokenVerifier } from './auth/token-verifier';
import type { AuthSettings } from './auth/auth-settings';
import { assertEveryRouteDeclaresAccess, type HttpRoute, routesOf } from './auth/routes';
import { jsonBody } from './json-body';

/** The largest JSON body when a service does not say (HTTP_BODY_LIMIT's default): 256 KiB, far above any real request. */
export const DEFAULT_BODY_LIMIT_BYTES = 262_144;

export interface HttpSettings {
  /** Undefined: the service has public routes only (the agent's /health and /metrics). */
  auth?: AuthSettings;
  bodyLimitBytes?: number;
  /**
   * False: no body parser at all, the app reads request bodies itself (the console streams them on to
   * the services and enforces the limit while it does). Default true.
   */
  parseBodies?: boolean;
}

/** Every HTTP route of a running application (from Nest's container, so nothing registered is missed). */
export function routesOfApp(app: INestApplication): HttpRoute[] {
  const controllers = new DiscoveryService(app.get(ModulesContainer)).getControllers();
  return controllers.flatMap((w) => (w.metatype ? routesOf(w.metatype as never) : []));
}

/** Express's own for a JSON answer (it adds the charset to a string body; a body of bytes gets it here too). */
const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
interface JsonResponse {
  get(field: string): string | undefined;
  set(field: string, value: string): unknown;
  send(body: string | Buffer): unknown;
}

/**
 * What every flexmig HTTP API shares, applied before `listen`: an explicit JSON body limit (413 beyond
 * it), the one error shape, and bearer-token checks on every route that is not public. Refuses (throws)
 * when a route declares no access.
 */
export function configureHttp(app: INestApplication, settings: HttpSettings, logger?: Logger): void {
  const limit = settings.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const routes = routesOfApp(app);
  assertEveryRouteDeclaresAccess(routes, settings.auth !== undefined);
  const verifier = settings.auth?.mode === 'on' ? new TokenVerifier(settings.auth) : undefined;
  // the app is created with `bodyParser: false`, so these are the only parsers, with our limit; the gate
  // before them leaves the body of a request that is not authenticated unread (the guard then says why)
  const express = app as NestExpressApplication;
  // no ETag on the API's answers: they are live state that no client revalidates (the CLI and the console
  // ask again; a watch is the event stream), and Express hashed every body for it (sha1: about 1.3 ms of a
  // 1 MB page of 1,000 hosts, docs/scale.md)
  express.set('etag', false);
  // every JSON answer (Nest's replies and the error filter's) through jsonBody: a long page in pieces
  const response = (express.getHttpAdapter().getInstance() as { response: { json: unknown } }).response;
  response.json = function json(this: JsonResponse, body: unknown) {
    if (!this.get('Content-Type')) this.set('Content-Type', JSON_CONTENT_TYPE);
    return this.send(jsonBody(body));
  };
  express.use(httpSpans);
  if (settings.parseBodies !== false) {
    express.use(bodyGate(routes, settings.auth, verifier));
    express.useBodyParser('json', { limit });
    express.useBodyParser('urlencoded', { extended: true, limit });
  }
  app.useGlobalFilters(new ErrorsFilter());
  app.useGlobalGuards(new AuthGuard(new Reflector(), settings.auth, verifier));
  if (settings.auth?.mode === 'off') {
    logger?.warn('AUTH=off: HTTP authentication is OFF; anyone who reaches this port may do anything (a developer loop only, never a shared machine)');
  }
}
