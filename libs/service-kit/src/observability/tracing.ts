import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface Tracing {
  /** Exports what is still buffered, then stops. */
  shutdown(): Promise<void>;
}

let active: Tracing | undefined;

/**
 * Turns tracing on for this process when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: spans are batched and sent over OTLP/HTTP (JSON) to
 * `<endpoint>/v1/traces`, W3C trace context is propagated (HTTP, NATS headers, CloudEvents) and the
 * active span follows async work (AsyncLocalStorage). The exporter reads the standard OTEL_* variables
 * (headers, timeout; OTEL_BSP_* for the batch). Unset: nothing is registered, every span is a no-op.
 */
export function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  if (active) return active;
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? `flexmig-${service}` }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  trace.setGlobalTracerProvider(provider);
  active = { shutdown: () => provider.shutdown() };
  return active;
}

/** Flushes and stops this process's tracing, if on (at shutdown). */
export async function stopTracing(): Promise<void> {
  await active?.shutdown().catch(() => undefined);
}
