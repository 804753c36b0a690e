import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { httpSpans } from '@flexmig/service-kit';
import type { ConsoleConfig } from '../config';
import { ServiceProxy } from './service-proxy';

const listen = (server: Server) => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/**
 * The console's proxy in a trace, with the OpenTelemetry SDK registered as the services register it: a
 * routed call is a CLIENT span under the console's request span, and the service receives that span as
 * its parent, so one trace runs from the caller through the console into the service.
 */
describe('ServiceProxy tracing (real HTTP on loopback)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const received: IncomingHttpHeaders[] = [];
  const service = createServer((req, res) => {
    received.push(req.headers);
    res.writeHead(req.url?.includes('broken') ? 500 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  let console: Server;
  let consoleUrl = '';

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    const config = { services: { inventory: await listen(service) }, proxyTimeoutMs: 5_000, bodyLimitBytes: 1024 } as unknown as ConsoleConfig;
    const proxy = new ServiceProxy(config);
    // the console's own server span (service-kit's middleware), then the forward, as in the console
    console = createServer((req, res) => httpSpans(req, res, () => void proxy.forward('inventory', req, res)));
    consoleUrl = await listen(console);
  });
  afterAll(async () => {
    await close(console);
    await close(service);
    trace.disable();
    propagation.disable();
    context.disable();
  });
  beforeEach(() => {
    exporter.reset();
    received.length = 0;
  });

  const call = (path: string, headers: Record<string, string> = {}) =>
    new Promise<number>((resolve, reject) => {
      request(`${consoleUrl}${path}`, { headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
        .on('error', reject)
        .end();
    });
  const finished = async (n: number) => {
    for (let i = 0; i < 100 && exporter.getFinishedSpans().length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return exporter.getFinishedSpans();
  };

  it("continues the caller's trace: console request span → proxy CLIENT span → the service's parent", async () => {
    const callerTrace = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    expect(await call('/api/v1/hosts?limit=5', { traceparent: `00-${callerTrace}-${callerSpan}-01` })).toBe(200);
    const spans = await finished(2);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    const client = spans.find((s) => s.name === 'proxy inventory')!;
    expect(client).toBeDefined();
    expect(client.kind).toBe(SpanKind.CLIENT);
    expect(server.spanContext().traceId).toBe(callerTrace);
    expect(server.parentSpanContext?.spanId).toBe(callerSpan);
    expect(client.spanContext().traceId).toBe(callerTrace);
    expect(client.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(client.attributes).toMatchObject({ 'http.request.method': 'GET', 'url.path': '/api/v1/hosts', 'flexmig.service': 'inventory', 'http.response.status_code': 200 });
    // the service gets the proxy's span as parent, not the caller's
    expect(received[0]!.traceparent).toBe(`00-${callerTrace}-${client.spanContext().spanId}-01`);
  });

  it('starts a trace when the caller sends none, and marks a 5xx answer as an error', async () => {
    expect(await call('/api/v1/broken')).toBe(500);
    const spans = await finished(2);
    const client = spans.find((s) => s.name === 'proxy inventory')!;
    expect(client.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(received[0]!.traceparent).toBe(`00-${client.spanContext().traceId}-${client.spanContext().spanId}-01`);
  });
});
