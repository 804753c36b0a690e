import http from 'node:http';

/**
 * The small HTTP side of the kube processes: /health/live, /health/ready (what the chart's probes and the
 * tests' launcher ask) and the routes a process adds. Not NestJS: each serves one or no route, has no
 * database, no NATS and no bearer tokens of flexmig (the issuer's callers prove themselves to Kubernetes).
 */
export type Route = (req: http.IncomingMessage, body: string) => Promise<{ status: number; body: unknown }>;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface SmallServerOptions {
  port: number;
  host: string;
  /** `METHOD /path` → handler. */
  routes: Record<string, Route>;
  /** Largest body read, bytes (413 beyond it). */
  bodyLimit: number;
  ready: () => boolean;
}

const send = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
};

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `the request body is larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function startSmallServer(o: SmallServerOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health/live') return send(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/health/ready') return o.ready() ? send(res, 200, { status: 'ok' }) : send(res, 503, { status: 'starting' });
    const route = o.routes[`${req.method} ${path}`];
    if (!route) return send(res, 404, { message: `no route ${req.method} ${path}` });
    readBody(req, o.bodyLimit)
      .then((body) => route(req, body))
      .then(
        (r) => send(res, r.status, r.body),
        (e: unknown) => {
          if (e instanceof HttpError) return send(res, e.status, { message: e.message });
          console.error(`${req.method} ${path} failed:`, e);
          send(res, 500, { message: `internal error: ${(e as Error).message}` });
        },
      );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve(server));
  });
}
