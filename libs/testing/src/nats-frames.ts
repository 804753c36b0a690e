/**
 * The NATS client protocol cut into whole frames (https://docs.nats.io/reference/reference-protocols/nats-protocol),
 * for a test proxy that delays or repeats chosen messages. Pure: bytes in, frames out.
 *
 * A frame is one protocol line (`PING`, `SUB …`, `INFO {…}`), or a line and the payload it announces:
 *   PUB  <subject> [reply-to] <#bytes>
 *   HPUB <subject> [reply-to] <#header bytes> <#total bytes>
 *   MSG  <subject> <sid> [reply-to] <#bytes>
 *   HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
 * each followed by the payload and CRLF.
 */
export interface NatsFrame {
  /** The operation, upper case: PUB, HPUB, MSG, HMSG, SUB, PING, INFO, CONNECT… */
  op: string;
  /** The subject, for the four message operations. */
  subject?: string;
  /** Headers and body of a message (empty for the other operations). */
  payload: Buffer;
  /** The frame's bytes exactly as they came: what the proxy forwards. */
  raw: Buffer;
}

const CRLF = Buffer.from('\r\n');
/** A protocol line longer than this is not NATS (nats-server's own limit on a control line is 4 KiB). */
const maxLineBytes = 64 * 1024;

/** Where a message operation's total size is, counted from the end of its arguments. */
const sizedOps: Record<string, { minArgs: number }> = { PUB: { minArgs: 2 }, HPUB: { minArgs: 3 }, MSG: { minArgs: 3 }, HMSG: { minArgs: 4 } };

/** Accumulates the bytes of one direction of a connection and hands back its complete frames. */
export class NatsFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every frame now complete, in order. Throws on bytes that are not NATS. */
  push(chunk: Buffer): NatsFrame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: NatsFrame[] = [];
    for (;;) {
      const frame = this.next();
      if (!frame) return frames;
      frames.push(frame);
    }
  }

  /** Bytes received that do not yet make a frame. */
  get pending(): number {
    return this.buf.length;
  }

  private next(): NatsFrame | undefined {
    const eol = this.buf.indexOf(CRLF);
    if (eol < 0) {
      if (this.buf.length > maxLineBytes) throw new Error(`NATS protocol line longer than ${maxLineBytes} bytes: not a NATS stream`);
      return undefined;
    }
    const line = this.buf.subarray(0, eol).toString('latin1');
    const args = line.trim().split(/\s+/);
    const op = args[0].toUpperCase();
    const sized = sizedOps[op];
    if (!sized) return this.take(eol + 2, { op, payload: Buffer.alloc(0) });
    if (args.length - 1 < sized.minArgs) throw new Error(`malformed NATS ${op} line: ${JSON.stringify(line)}`);
    const total = Number(args[args.length - 1]);
    if (!Number.isInteger(total) || total < 0) throw new Error(`malformed NATS ${op} size in ${JSON.stringify(line)}`);
    const end = eol + 2 + total + 2;
    if (this.buf.length < end) return undefined;
    return this.take(end, { op, subject: args[1], payload: Buffer.from(this.buf.subarray(eol + 2, eol + 2 + total)) });
  }

  private take(end: number, frame: Omit<NatsFrame, 'raw'>): NatsFrame {
    const raw = Buffer.from(this.buf.subarray(0, end));
    this.buf = this.buf.subarray(end);
    return { ...frame, raw };
  }
}
