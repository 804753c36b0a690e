import { z } from 'zod';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { defineEvent, defineRequest, ErrorCode, FlexmigError } from '@flexmig/contracts';
import { startTestNats, TestNats } from '@flexmig/testing';
import { NatsBus } from './nats-bus';

const Echo = defineRequest({
  subject: 'test.echo.{hostId}',
  description: 'echo',
  request: z.object({ text: z.string().min(1) }),
  reply: z.object({ text: z.string(), host: z.string() }),
});
const Happened = defineEvent({ type: 'test.happened', description: 'test', data: z.object({ n: z.number() }) });

describe('NatsBus against a real NATS server', () => {
  let nats: TestNats;
  let bus: NatsBus;

  beforeAll(async () => {
    nats = await startTestNats('bus');
    bus = await NatsBus.connect({ url: nats.url, prefix: nats.prefix, name: 'test' });
    await bus.ensureEventsStream();
    bus.handle(Echo, async (req) => {
      if (req.text === 'boom') throw new FlexmigError(ErrorCode.Conflict, 'boom refused', { why: 'test' });
      if (req.text === 'bug') throw new Error('unexpected');
      return { text: req.text.toUpperCase(), host: 'h1' };
    }, { params: { hostId: 'h1' } });
  });
  afterAll(async () => {
    await bus?.close();
    await nats?.stop();
  });

  it('answers a valid request with a validated reply on the parameterised subject', async () => {
    await expect(bus.request(Echo, { text: 'hi' }, { params: { hostId: 'h1' } })).resolves.toEqual({ text: 'HI', host: 'h1' });
  });

  it('turns a typed error into an error reply that keeps its code and details', async () => {
    await expect(bus.request(Echo, { text: 'boom' }, { params: { hostId: 'h1' } })).rejects.toMatchObject({
      code: ErrorCode.Conflict,
      message: 'boom refused',
      details: { why: 'test' },
    });
  });

  it('reports an unexpected handler error as INTERNAL and keeps serving', async () => {
    await expect(bus.request(Echo, { text: 'bug' }, { params: { hostId: 'h1' } })).rejects.toMatchObject({ code: ErrorCode.Internal });
    await expect(bus.request(Echo, { text: 'again' }, { params: { hostId: 'h1' } })).resolves.toMatchObject({ text: 'AGAIN' });
  });

  it('answers a malformed message with a validation error reply, never a crash', async () => {
    const raw = await bus.nc.request(bus.subject(Echo.subject, { hostId: 'h1' }), new TextEncoder().encode('{"text": 42}'));
    const reply = JSON.parse(new TextDecoder().decode(raw.data));
    expect(reply.ok).toBe(false);
    expect(reply.error.code).toBe(ErrorCode.ValidationFailed);
    expect(reply.error.message).toContain('text');
    const notJson = await bus.nc.request(bus.subject(Echo.subject, { hostId: 'h1' }), new TextEncoder().encode('not json'));
    expect(JSON.parse(new TextDecoder().decode(notJson.data)).error.code).toBe(ErrorCode.MalformedMessage);
  });

  it('refuses to send a request that breaks its own contract', async () => {
    await expect(bus.request(Echo, { text: '' }, { params: { hostId: 'h1' } })).rejects.toMatchObject({ code: ErrorCode.ValidationFailed });
  });

  it('says UNAVAILABLE when nobody serves a subject', async () => {
    await expect(bus.request(Echo, { text: 'x' }, { params: { hostId: 'nobody' }, timeoutMs: 1000 })).rejects.toMatchObject({
      code: ErrorCode.Unavailable,
    });
  });

  it('publishes CloudEvents to JetStream and de-duplicates a repeated id', async () => {
    await bus.publishEvent(Happened, { n: 1 }, { id: 'fact-1', source: '/flexmig/test', subject: 'thing-1' });
    await bus.publishEvent(Happened, { n: 1 }, { id: 'fact-1', source: '/flexmig/test', subject: 'thing-1' });
    await bus.publishEvent(Happened, { n: 2 }, { id: 'fact-2', source: '/flexmig/test' });
    const js = await bus.jetstream();
    const jsm = await bus.jetstreamManager();
    // a consumer created afterwards reads the history
    await jsm.consumers.add(bus.eventsStream, { durable_name: 'reader', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const consumer = await js.consumers.get(bus.eventsStream, 'reader');
    const batch = await consumer.fetch({ max_messages: 10, expires: 1000 });
    const events: any[] = [];
    for await (const m of batch) {
      events.push(m.json());
      m.ack();
    }
    expect(events.map((e) => e.id)).toEqual(['fact-1', 'fact-2']);
    expect(events[0]).toMatchObject({ specversion: '1.0', type: 'test.happened', source: '/flexmig/test', subject: 'thing-1', data: { n: 1 } });
  });
});
