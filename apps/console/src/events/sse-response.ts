import type { ServerResponse } from 'node:http';

/**
 * One Server-Sent Events response (the WHATWG HTML "server-sent events" format): `id`, `event` and one
 * `data` line of JSON per message, and a comment line every `heartbeatMs` so that proxies and load
 * balancers keep an idle stream open. A message without `id` leaves the client's last event id as it was.
 */
export class SseResponse {
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    heartbeatMs: number,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // nginx and others buffer responses unless told not to
      'x-accel-buffering': 'no',
    });
    res.write(': flexmig live stream\n\n');
    this.heartbeat = setInterval(() => this.comment('keep-alive'), heartbeatMs);
  }

  send(message: { id?: string; event: string; data: unknown }): void {
    if (this.res.writableEnded) return;
    const id = message.id === undefined ? '' : `id: ${message.id}\n`;
    this.res.write(`${id}event: ${message.event}\ndata: ${JSON.stringify(message.data)}\n\n`);
  }

  comment(text: string): void {
    if (!this.res.writableEnded) this.res.write(`: ${text.replace(/\n/g, ' ')}\n\n`);
  }

  end(): void {
    clearInterval(this.heartbeat);
    if (!this.res.writableEnded) this.res.end();
  }
}
