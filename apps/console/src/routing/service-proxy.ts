import { Inject, Injectable } from '@nestjs/common';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { tracer } from '@flexmig/messaging';
import { CONSOLE_CONFIG, type ConsoleConfig, type ServiceName } from '../config';
import { serviceUnreachable } from './service-errors';

/** Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, never the next one. */
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

function forwardable(headers: IncomingMessage['headers']): Record<string, string | string[]> {
  const named = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((h) => h.trim()));
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !hopByHop.has(name) && !named.has(name)) out[name] = value;
  }
  return out;
}

/**
 * Forwards one HTTP request to the service that owns it and streams the answer back: the body both ways
 * unbuffered, every end-to-end header (the Authorization header included: each service checks its bearer
 * tokens itself), the body limit counted as the bytes pass, and a timeout on silence. Failures before the
 * service answered become the one error shape: 413, 503 UNAVAILABLE (the service cannot be reached),
 * 504 TIMEOUT; after it answered, the connection is cut (the status line is already sent). Each forward is
 * a CLIENT span `proxy <service>` under the console's request span, and the service continues that span's
 * trace (its `traceparent` replaces the caller's).
 */
@Injectable()
export class ServiceProxy {
  constructor(@Inject(CONSOLE_CONFIG) private readonly config: ConsoleConfig) {}

  forward(owner: ServiceName, req: IncomingMessage & { originalUrl?: string }, res: ServerResponse): Promise<void> {
    const limit = this.config.bodyLimitBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) return Promise.reject(tooLarge(limit));
    const base = new URL(this.config.services[owner]);
    const target = new URL(req.originalUrl ?? req.url ?? '/', base);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = forwardable(req.headers);
    headers['x-forwarded-for'] = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
    headers['x-forwarded-host'] = req.headers.host ?? '';
    headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
    const span = tracer().startSpan(`proxy ${owner}`, {
      kind: SpanKind.CLIENT,
      attributes: { 'http.request.method': req.method ?? '', 'server.address': base.host, 'url.path': target.pathname, 'flexmig.service': owner },
    });
    propagation.inject(trace.setSpan(context.active(), span), headers);
    // once: whichever of the answer's end, a failure or the client going away comes first
    const endSpan = (status?: number, error?: FlexmigError) => {
      if (!span.isRecording()) return;
      if (status !== undefined) span.setAttribute('http.response.status_code', status);
      if (error || (status ?? 0) >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message });
      span.end();
    };

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (e: FlexmigError) => {
        upstream.destroy();
        endSpan(undefined, e);
        if (settled) return;
        settled = true;
        if (res.headersSent) {
          res.destroy(e);
          resolve();
        } else reject(e);
      };
      const upstream = send(target, { method: req.method, headers, timeout: this.config.proxyTimeoutMs }, (answer) => {
        settled = true;
        const out = forwardable(answer.headers);
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('end', () => {
          endSpan(answer.statusCode);
          resolve();
        });
      });
      upstream.on('timeout', () => fail(this.timedOut(owner, base)));
      upstream.on('error', (e: NodeJS.ErrnoException) => fail(serviceUnreachable(owner, base, e.code ?? e.message)));
      // the client went away: nothing to answer, stop the service's work on it
      res.on('close', () => {
        if (!res.writableFinished) upstream.destroy();
        endSpan(undefined, new FlexmigError(ErrorCode.Unavailable, 'the client went away before the answer was sent'));
        resolve();
      });
      let received = 0;
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > limit) {
          req.unpipe(upstream);
          fail(tooLarge(limit));
        }
      });
      req.pipe(upstream);
    });
  }

  private timedOut(owner: ServiceName, base: URL): FlexmigError {
    return new FlexmigError(
      ErrorCode.Timeout,
      `${owner} at ${base.origin} sent nothing for ${this.config.proxyTimeoutMs} ms (PROXY_TIMEOUT_MS): the request may or may not ` +
        'have taken effect there; look before you retry it.',
      { service: owner, url: base.origin, timeoutMs: this.config.proxyTimeoutMs },
    );
  }
}

const tooLarge = (limit: number) =>
  new FlexmigError(ErrorCode.PayloadTooLarge, `the request body is larger than the console passes on (${limit} bytes, HTTP_BODY_LIMIT)`, { limitBytes: limit });
