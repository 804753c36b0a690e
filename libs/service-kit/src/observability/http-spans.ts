import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { tracer } from '@flexmig/messaging';

const headerGetter = {
  get: (h: IncomingHttpHeaders, key: string) => {
    const v = h[key];
    return Array.isArray(v) ? v[0] : v;
  },
  keys: (h: IncomingHttpHeaders) => Object.keys(h),
};

/**
 * Express middleware: each HTTP request in a server span `<METHOD> <route>` (continuing the caller's
 * W3C `traceparent`, if any), active while the request is handled, so that what it sends over NATS and
 * what it persists (a migration's trace context) belong to it. Health and metrics probes are not traced.
 */
export function httpSpans(req: IncomingMessage & { route?: { path?: string }; baseUrl?: string }, res: ServerResponse, next: () => void): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path.startsWith('/health') || path === '/metrics') return next();
  const parent = propagation.extract(ROOT_CONTEXT, req.headers, headerGetter);
  const span = tracer().startSpan(`${req.method} ${path}`, { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method ?? '', 'url.path': path } }, parent);
  res.once('finish', () => {
    // the route template once Nest has matched it (ids out of the span name)
    if (req.route?.path) span.updateName(`${req.method} ${req.baseUrl ?? ''}${req.route.path}`);
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  });
  const active = trace.setSpan(parent, span);
  // the body arrives on the request's stream events: bind them, so the handler after the parser runs in the span
  context.bind(active, req);
  context.bind(active, res);
  context.with(active, next);
}
