import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsInterceptor } from './nats-interceptor';
import { NatsServerProcess } from './servers';

const text = (d: Uint8Array) => new TextDecoder().decode(d);

/** Against a real nats-server: the interceptor passes everything, and delays or repeats what a rule says. */
describe('NatsInterceptor', () => {
  const server = new NatsServerProcess();
  let proxy: NatsInterceptor;
  let direct: NatsConnection;
  let through: NatsConnection;

  beforeAll(async () => {
    await server.start();
    proxy = await new NatsInterceptor(server.port).start();
    direct = await connect({ servers: server.url });
    through = await connect({ servers: proxy.url });
  });
  afterAll(async () => {
    await through?.close();
    await direct?.close();
    await proxy?.stop();
    await server.stop();
  });

  const collect = (nc: NatsConnection, subject: string) => {
    const got: { data: string; at: number }[] = [];
    nc.subscribe(subject, { callback: (_e, m) => void got.push({ data: text(m.data), at: Date.now() }) });
    return got;
  };

  it('passes requests, replies and large messages unchanged without a rule', async () => {
    direct.subscribe('echo', { callback: (_e, m) => void m.respond(m.data) });
    await direct.flush();
    const big = 'x'.repeat(300_000);
    expect(text((await through.request('echo', 'ping', { timeout: 2000 })).data)).toBe('ping');
    expect(text((await through.request('echo', big, { timeout: 5000 })).data)).toBe(big);
    expect(proxy.counts.delayed).toEqual({ 'to-server': 0, 'to-client': 0 });
  });

  it('delays and repeats the client publications that match, and only those', async () => {
    const got = collect(direct, 'cmd.>');
    await direct.flush();
    const remove = proxy.intercept({ direction: 'to-server', match: (s, p) => s === 'cmd.step' && text(p).includes('m-1'), delayMs: 300, duplicateAfterMs: 600 });
    const sentAt = Date.now();
    through.publish('cmd.step', 'm-1 step 3');
    through.publish('cmd.other', 'm-1 not mine');
    through.publish('cmd.step', 'm-2 step 3');
    await new Promise((r) => setTimeout(r, 900));
    remove();
    expect(got.map((g) => g.data)).toEqual(['m-1 not mine', 'm-2 step 3', 'm-1 step 3', 'm-1 step 3']);
    expect(got[2].at - sentAt).toBeGreaterThanOrEqual(290);
    expect(got[3].at - sentAt).toBeGreaterThanOrEqual(590);
    expect(proxy.counts.delayed['to-server']).toBe(1);
    expect(proxy.counts.duplicated['to-server']).toBe(1);
  });

  it('drops the client publications a dropping rule matches: they never reach the server, the others pass in order', async () => {
    const got = collect(direct, 'lost.>');
    await direct.flush();
    const remove = proxy.intercept({ direction: 'to-server', match: (s) => s === 'lost.compensate', drop: true });
    through.publish('lost.compensate', 'c-1');
    through.publish('lost.step', 's-1');
    await through.flush();
    remove();
    through.publish('lost.compensate', 'c-2');
    await through.flush();
    await new Promise((r) => setTimeout(r, 100));
    expect(got.map((g) => g.data)).toEqual(['s-1', 'c-2']);
    expect(proxy.counts.dropped['to-server']).toBe(1);
  });

  it('delays and repeats replies delivered to the client: the second copy reaches its inbox after the request settled', async () => {
    direct.subscribe('svc', { callback: (_e, m) => void m.respond(`answer to ${text(m.data)}`) });
    await direct.flush();
    const inboxCopies: string[] = [];
    const remove = proxy.intercept({ direction: 'to-client', match: (s, p) => s.startsWith('_INBOX.') && text(p).includes('answer'), delayMs: 200, duplicateAfterMs: 400 });
    // a raw subscription on the client's own inbox sees every copy delivered to it
    through.subscribe('_INBOX.>', { callback: (_e, m) => void inboxCopies.push(text(m.data)) });
    const t = Date.now();
    const reply = await through.request('svc', 'q1', { timeout: 3000 });
    expect(text(reply.data)).toBe('answer to q1');
    expect(Date.now() - t).toBeGreaterThanOrEqual(190);
    await new Promise((r) => setTimeout(r, 500));
    remove();
    expect(inboxCopies.filter((c) => c === 'answer to q1').length).toBeGreaterThanOrEqual(2);
    expect(proxy.counts.duplicated['to-client']).toBeGreaterThanOrEqual(1);
  });
});
