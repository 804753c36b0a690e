/**
 * The target's end of a link probe (docs/prediction.md, agent.{hostId}.link.sink): a one-shot TCP listener
 * on the migration listen host that accepts ONE connection, reads and discards what arrives (counting, up
 * to a cap), and closes. It is not a QEMU: the source's probe QEMU migrates into it without a return path,
 * so what the probe measures is what QEMU pushes towards this host, through the link migrations take.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { hostPort, rangePortsFrom } from './qemu-address';

/** How a sink ended: the sender closed (`eof`), the byte cap was reached, no one connected in time (`unused`), the read took too long, an error, or the agent closed it. */
export type LinkSinkEnd = 'eof' | 'cap' | 'unused' | 'read-timeout' | 'error' | 'closed';

export interface LinkSinkResult {
  bytes: number;
  end: LinkSinkEnd;
  /** The peer's address (`host:port`), null when no one connected. */
  peer: string | null;
  error?: string;
}

export interface LinkSinkOptions {
  host: string;
  /** QEMU_MIGRATION_PORT_RANGE: the sink takes a free port of it (from a random one); unset, the kernel picks one. */
  portRange?: [number, number];
  maxBytes: number;
  /** Close unused after this long (ms). */
  acceptWithinMs: number;
  /** Close a connection that has not ended this long after it was accepted (ms). */
  readWithinMs: number;
  /** Who it is for (errors, logs). */
  label: string;
}

export class LinkSink {
  readonly expiresAt: Date;
  /** Settles once the sink is closed; never rejects. */
  readonly result: Promise<LinkSinkResult>;
  private settle!: (r: LinkSinkResult) => void;
  private bytes = 0;
  private peer: string | null = null;
  private socket?: Socket;
  private timer?: NodeJS.Timeout;
  private done = false;

  private constructor(
    private readonly server: Server,
    readonly address: string,
    private readonly o: LinkSinkOptions,
  ) {
    this.expiresAt = new Date(Date.now() + o.acceptWithinMs);
    this.result = new Promise((r) => (this.settle = r));
    this.timer = setTimeout(() => this.finish('unused'), o.acceptWithinMs);
    server.once('connection', (s) => this.accept(s));
  }

  /** Listens on the host (a port of the range when one is set); CONFLICT when every port of the range is taken. */
  static async open(o: LinkSinkOptions): Promise<LinkSink> {
    const ports = o.portRange ? rangePortsFrom(o.portRange, Math.random() * (o.portRange[1] - o.portRange[0] + 1)) : [0];
    let last: Error | undefined;
    for (const port of ports) {
      const server = createServer({ pauseOnConnect: false });
      server.maxConnections = 1;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: o.host, port, exclusive: true }, () => {
            server.removeListener('error', reject);
            resolve();
          });
        });
      } catch (e) {
        last = e as Error;
        server.close();
        if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw new FlexmigError(ErrorCode.AgentFailed, `cannot open the link sink for ${o.label} on ${hostPort(o.host, port)}: ${last.message}`);
      }
      const bound = server.address();
      const actual = bound && typeof bound === 'object' ? bound.port : port;
      return new LinkSink(server, hostPort(o.host, actual), o);
    }
    throw new FlexmigError(
      ErrorCode.Conflict,
      `cannot open the link sink for ${o.label}: every port of QEMU_MIGRATION_PORT_RANGE ${o.portRange!.join('-')} on ${o.host} is in use (${last?.message}); ask again when a migration ended, or widen the range`,
    );
  }

  /** Closes it now (the agent closes); the result says `closed` unless it had ended already. */
  close(): void {
    this.finish('closed');
  }

  private accept(s: Socket): void {
    // exactly one connection: no one else gets in once the probe is connected
    this.server.close();
    if (this.done) {
      s.destroy();
      return;
    }
    this.socket = s;
    this.peer = hostPort(s.remoteAddress ?? '?', s.remotePort ?? 0);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.finish('read-timeout'), this.o.readWithinMs);
    s.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      if (this.bytes >= this.o.maxBytes) this.finish('cap');
    });
    s.once('end', () => this.finish('eof'));
    s.once('error', (e) => this.finish('error', e.message));
    s.once('close', () => this.finish('eof'));
  }

  private finish(end: LinkSinkEnd, error?: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.server.close();
    this.socket?.destroy();
    this.settle({ bytes: this.bytes, end, peer: this.peer, ...(error ? { error } : {}) });
  }
}
