import { z } from 'zod';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { defineEvent, defineMessage, defineRequest } from '@flexmig/contracts';
import { startTestNats, TestNats, waitFor } from '@flexmig/testing';
import { NatsBus } from './nats-bus';
import { inSpan, traceCalls } from './trace';

const Ask = defineRequest({
  subject: 'test.traced.ask',
  description: 'a traced request',
  request: z.object({ n: z.number() }),
  reply: z.object({ traceId: z.string(), parentSpanName: z.string() }),
});
const Tell = defineMessage({ subject: 'test.traced.tell', description: 'a traced message', message: z.object({ n: z.number() }) });
const Done = defineEvent({ type: 'test.traced-done', description: 'test', data: z.object({ n: z.number() }) });

/**
 * W3C trace context over NATS, on a real server, with the OpenTelemetry SDK as the services register it:
 * a request and a message sent inside a span are handled in a span of the same trace, and an event
 * published inside one carries its CloudEvents `traceparent`.
 */
describe('trace context across NATS (real server)', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let nats: TestNats;
  let bus: NatsBus;
  const told: { traceId?: string; n: number }[] = [];

  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    nats = await startTestNats('trace');
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'trace-test' });
    await bus.ensureEventsStream();
    bus.handle(Ask, async () => {
      const active = trace.getActiveSpan() as unknown as { spanContext(): { traceId: string }; name: string };
      return { traceId: active.spanContext().traceId, parentSpanName: active.name };
    });
    bus.subscribe(Tell, (m) => void told.push({ n: m.n, traceId: trace.getActiveSpan()?.spanContext().traceId }));
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
    trace.disable();
    propagation.disable();
    context.disable();
  });

  it('continues the sender\'s trace in the request handler, through a client and a server span', async () => {
    const { reply, traceId } = await inSpan('step 3 transfer-memory', {}, async (span) => ({ reply: await bus.request(Ask, { n: 1 }), traceId: span.spanContext().traceId }));
    expect(reply).toEqual({ traceId, parentSpanName: `nats handle ${bus.subject(Ask.subject)}` });
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const byName = new Map(spans.map((s) => [s.name, s]));
    const client = byName.get('nats request test.traced.ask')!;
    const server = [...byName.values()].find((s) => s.name.startsWith('nats handle '))!;
    expect(client.parentSpanContext?.spanId).toBe(byName.get('step 3 transfer-memory')!.spanContext().spanId);
    expect(server.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
  });

  it('continues it in a message handler, and adds no span for a message sent outside any trace', async () => {
    const traceId = await inSpan('sender', {}, async (span) => {
      bus.publish(Tell, { n: 2 });
      return span.spanContext().traceId;
    });
    bus.publish(Tell, { n: 3 });
    await waitFor('both messages', () => told.length >= 2);
    expect(told.find((t) => t.n === 2)?.traceId).toBe(traceId);
    expect(told.find((t) => t.n === 3)?.traceId).toBeUndefined();
  });

  it('puts the trace context of an event in its CloudEvents traceparent extension', async () => {
    const { event, traceId } = await inSpan('publisher', {}, async (span) => ({ event: await bus.publishEvent(Done, { n: 4 }, { id: 'done-4', source: '/test' }), traceId: span.spanContext().traceId }));
    expect(event.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const jsm = await bus.jetstreamManager();
    await jsm.consumers.add(bus.eventsStream, { durable_name: 'trace_check', ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: bus.eventSubject(Done.type) });
    const consumer = await (await bus.jetstream()).consumers.get(bus.eventsStream, 'trace_check');
    const msg = await consumer.next({ expires: 2_000 });
    expect(msg?.json()).toMatchObject({ id: 'done-4', traceparent: event.traceparent });
    expect(msg?.headers?.get('traceparent')).toBe(event.traceparent);
  });

  it('traces each call of a wrapped object, ending a promise\'s span when it settles, and keeps sync results sync', async () => {
    const driver = traceCalls({ kind: 'sim', list: () => [1, 2], start: async (id: string) => id.toUpperCase() }, 'driver');
    expect(driver.kind).toBe('sim');
    expect(driver.list()).toEqual([1, 2]);
    await inSpan('agent step 2 transfer-config', {}, async () => expect(await driver.start('vm')).toBe('VM'));
    const names = exporter.getFinishedSpans().map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['driver.list', 'driver.start']));
    const start = exporter.getFinishedSpans().find((s) => s.name === 'driver.start')!;
    const parent = exporter.getFinishedSpans().find((s) => s.name === 'agent step 2 transfer-config')!;
    expect(start.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
  });
});
