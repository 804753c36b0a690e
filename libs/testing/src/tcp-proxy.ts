import net from 'node:net';
import { freePort } from './processes';

/**
 * A TCP proxy between clients and a server (127.0.0.1), that a test can cut as a network partition cuts:
 * open connections stay open and carry nothing, new ones connect and carry nothing (no reset, no FIN: the
 * client learns of it only from its own timeouts). `heal()` lets through what waited, as TCP retransmits
 * after a partition ends.
 */
export class TcpProxy {
  port = 0;
  private server?: net.Server;
  private cut = false;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();

  constructor(private readonly upstreamPort: number, private readonly upstreamHost = '127.0.0.1') {}

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => this.server!.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    return this;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    const upstream = net.connect(this.upstreamPort, this.upstreamHost);
    const pair = { client, upstream };
    this.pairs.add(pair);
    upstream.on('error', () => client.destroy());
    client.on('close', () => {
      upstream.destroy();
      this.pairs.delete(pair);
    });
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    if (this.cut) this.hold(pair);
  }

  private hold(p: { client: net.Socket; upstream: net.Socket }): void {
    p.client.unpipe(p.upstream);
    p.upstream.unpipe(p.client);
    p.client.pause();
    p.upstream.pause();
  }

  /** The partition: nothing passes any more, and nothing says so. */
  partition(): void {
    this.cut = true;
    for (const p of this.pairs) this.hold(p);
  }

  heal(): void {
    this.cut = false;
    for (const p of this.pairs) {
      p.client.pipe(p.upstream);
      p.upstream.pipe(p.client);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
