import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';

/**
 * flexmig's spans, through the OpenTelemetry API only: without a registered tracer provider (no
 * OTEL_EXPORTER_OTLP_ENDPOINT, see service-kit's startTracing) every call here is a no-op.
 */
export const tracer = () => trace.getTracer('flexmig');

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** The parent; default: the active context. */
  parent?: Context;
}

function failed(span: Span, e: unknown): void {
  span.recordException(e as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message ?? String(e) });
}

/** Runs `fn` in a new active span, ended when its promise settles (an error is recorded on it). */
export function inSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes }, opts.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      failed(span, e);
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * Every method call of `target` in a span `<prefix>.<method>` (a hypervisor driver's calls): a promise
 * ends its span when it settles, any other result at once. Properties that are not functions pass through.
 */
export function traceCalls<T extends object>(target: T, prefix: string, attributes: () => Attributes = () => ({})): T {
  return new Proxy(target, {
    get(t, key, receiver) {
      const value = Reflect.get(t, key, receiver) as unknown;
      if (typeof value !== 'function' || typeof key !== 'string' || key === 'constructor') return value;
      return (...args: unknown[]) => {
        const span = tracer().startSpan(`${prefix}.${key}`, { attributes: attributes() });
        let result: unknown;
        try {
          result = context.with(trace.setSpan(context.active(), span), () => (value as (...a: unknown[]) => unknown).apply(t, args));
        } catch (e) {
          failed(span, e);
          span.end();
          throw e;
        }
        if (result instanceof Promise) {
          return result.then(
            (v) => (span.end(), v),
            (e: unknown) => {
              failed(span, e);
              span.end();
              throw e;
            },
          );
        }
        span.end();
        return result;
      };
    },
  });
}

const recordSetter: TextMapSetter<Record<string, string>> = { set: (carrier, key, value) => (carrier[key] = value) };
const recordGetter: TextMapGetter<Record<string, string | undefined>> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

/** The W3C `traceparent` of a context (default: the active one); undefined when no span is recording there. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier, recordSetter);
  return carrier.traceparent;
}

/** The context a stored `traceparent` continues (the root context when there is none). */
export function contextOfTraceparent(traceparent: string | null | undefined): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }, recordGetter) : ROOT_CONTEXT;
}

export { SpanKind };
