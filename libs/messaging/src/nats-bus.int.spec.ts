import { z } from 'zod';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { defineEvent, defineRequest, ErrorCode, FlexmigError } from '@flexmig/contracts';
import { startTestNats, TcpProxy, TestNats, waitFor } from '@flexmig/testing';
import { NatsBus, neverDelivered } from './nats-bus';

const Echo = defineRequest({
  subject: 'test.echo.{hostId}',
  description: 'echo',
  request: z.object({ text: z.string().min(1) }),
  reply: z.object({ text: z.string(), host: z.string() }),
});
const Listing = defineRequest({
  subject: 'test.listing',
  description: 'a page of large items',
  request: z.object({ limit: z.number().int().min(1).max(1000) }),
  reply: z.object({ items: z.array(z.string()), nextCursor: z.string().nullable() }),
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
    // items of 4 KiB: a page of 1,000 is 4 MiB, over NATS's 1 MiB max_payload
    bus.handle(Listing, async (req) => ({ items: Array.from({ length: req.limit }, () => 'x'.repeat(4096)), nextCursor: null }));
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

  it('answers a reply larger than max_payload with PAYLOAD_TOO_LARGE saying what to ask for, not with silence', async () => {
    const max = bus.nc.info!.max_payload;
    await expect(bus.request(Listing, { limit: 1000 }, { timeoutMs: 5_000 })).rejects.toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: expect.stringMatching(new RegExp(`more than this NATS server's max_payload of ${max}: ask for a smaller page \\(limit\\)`)),
      details: { maxPayload: max, replyBytes: expect.any(Number) },
    });
    // a page that fits is answered as usual
    await expect(bus.request(Listing, { limit: 10 })).resolves.toMatchObject({ items: expect.any(Array), nextCursor: null });
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

  it('says UNAVAILABLE when nobody serves a subject, and that the request never reached anyone', async () => {
    const e = await bus.request(Echo, { text: 'x' }, { params: { hostId: 'nobody' }, timeoutMs: 1000 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.Unavailable });
    expect(neverDelivered(e)).toBe(true);
  });

  it('says TIMEOUT when a responder got the request and did not answer in time: not known undelivered', async () => {
    const sub = bus.nc.subscribe(`${nats.prefix}.test.silent.echo`, { callback: () => undefined });
    const Silent = defineRequest({ subject: 'test.silent.echo', description: 'never answered', request: Echo.request, reply: Echo.reply });
    const e = await bus.request(Silent, { text: 'x' }, { timeoutMs: 300 }).catch((x: unknown) => x);
    sub.unsubscribe();
    expect(e).toMatchObject({ code: ErrorCode.Timeout });
    expect(neverDelivered(e)).toBe(false);
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

  it('says whether NATS is reachable, and calls its listeners on each reconnect until they leave', async () => {
    const proxy = await new TcpProxy(Number(new URL(nats.url).port)).start();
    const viaProxy = await NatsBus.connect({ url: `nats://${proxy.url}`, prefix: nats.prefix, name: 'test-outage' });
    const heard: string[] = [];
    const leave = viaProxy.onReconnect(() => heard.push('first'));
    viaProxy.onReconnect(() => heard.push('second'));
    try {
      expect(viaProxy.reachable).toBe(true);
      for (const round of [1, 2]) {
        if (round === 2) leave();
        await proxy.stop(); // as while NATS restarts
        await waitFor('the disconnect', () => !viaProxy.reachable || undefined);
        // readiness stays: a NATS outage strikes every replica, and reads need no NATS
        expect(viaProxy.isConnected()).toBe(true);
        // a request meanwhile says why it got no reply
        await expect(viaProxy.request(Echo, { text: 'hi' }, { params: { hostId: 'h1' }, timeoutMs: 200 })).rejects.toMatchObject({
          code: ErrorCode.Timeout,
          message: expect.stringContaining('NATS is unreachable from this service'),
        });
        await proxy.start();
        await waitFor('the reconnect', () => viaProxy.reachable || undefined, { timeoutMs: 10_000 });
        expect(viaProxy.isConnected()).toBe(true);
      }
      expect(heard).toEqual(['first', 'second', 'second']);
      await viaProxy.close();
      expect(viaProxy.reachable).toBe(false);
      expect(viaProxy.isConnected()).toBe(false);
    } finally {
      await viaProxy.close();
      await proxy.stop();
    }
  });

  it('given a silent partition (no reset, no FIN), then its unanswered pings make it unreachable, and the partition healed, it reconnects', async () => {
    const proxy = await new TcpProxy(Number(new URL(nats.url).port)).start();
    const viaProxy = await NatsBus.connect({ url: `nats://${proxy.url}`, prefix: nats.prefix, name: 'test-partition', pingIntervalMs: 300 });
    let reconnects = 0;
    viaProxy.onReconnect(() => reconnects++);
    try {
      expect(viaProxy.reachable).toBe(true);
      proxy.partition();
      // two pings unanswered: stale within three intervals (nats.js maxPingOut 2), not after nats.js's default of minutes
      await waitFor('the stale connection seen', () => !viaProxy.reachable || undefined, { timeoutMs: 5_000 });
      proxy.heal();
      await waitFor('the reconnect', () => viaProxy.reachable || undefined, { timeoutMs: 15_000 });
      expect(reconnects).toBe(1);
      expect(await viaProxy.request(Echo, { text: 'after' }, { params: { hostId: 'h1' }, timeoutMs: 2_000 })).toEqual({ text: 'AFTER', host: 'h1' });
    } finally {
      await viaProxy.close();
      await proxy.stop();
    }
  });
});
