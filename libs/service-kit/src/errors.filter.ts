import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { throwError } from 'rxjs';
import { ErrorBody, ErrorCode, FlexmigError, httpStatusOf, isFlexmigError, transientFailure } from '@flexmig/contracts';

/** The part of Express's response the filter uses. */
interface HttpResponse {
  setHeader(name: string, value: string): void;
  status(code: number): { json(body: unknown): void };
}

/** RFC 6750: a 401 names the scheme to use; a 403 says the token lacks what the route needs. */
const challenges: Partial<Record<string, string>> = {
  [ErrorCode.Unauthenticated]: 'Bearer realm="flexmig"',
  [ErrorCode.Forbidden]: 'Bearer realm="flexmig", error="insufficient_scope"',
};

/**
 * The edge where typed errors become the wire shape `{code, message, details}`: HTTP responses get the
 * status of the code; RPC (NATS) handlers rethrow so the transport builds the error reply. An internal
 * error is logged with an id and answered with that id only: its message and stack stay in the log.
 */
@Catch()
export class ErrorsFilter implements ExceptionFilter {
  private readonly log = new Logger('errors');

  catch(exception: unknown, host: ArgumentsHost) {
    if (host.getType() === 'rpc') return throwError(() => exception);
    const { status, body, errorId } = toHttp(exception);
    if (errorId) this.log.error(`error id ${errorId}: ${describe(exception)}`, (exception as Error)?.stack);
    const response = host.switchToHttp().getResponse<HttpResponse>();
    const challenge = challenges[body.code];
    if (challenge) response.setHeader('WWW-Authenticate', challenge);
    response.status(status).json(body);
    return undefined;
  }
}

const describe = (e: unknown) => (isFlexmigError(e) ? `${e.code}: ${e.message}` : ((e as Error)?.message ?? String(e)));

/** The body of an internal error: a pointer into the log, nothing of the error itself. */
function internal(): { status: number; body: ErrorBody; errorId: string } {
  const errorId = randomUUID();
  return {
    status: 500,
    body: { code: ErrorCode.Internal, message: `internal error; see the service log for error id ${errorId}`, details: { errorId }, retryable: false },
    errorId,
  };
}

/** Body-parser's error types (http-errors `type`), as Nest hands them on (as such or as an HttpException's cause). */
const bodyParserType = (e: unknown): string | undefined => {
  const t = (e as { type?: unknown })?.type ?? ((e as { cause?: { type?: unknown } })?.cause?.type);
  return typeof t === 'string' ? t : undefined;
};

/**
 * Status and body of an exception. Typed errors keep their code and message (a 503 UNAVAILABLE or a 502
 * AGENT_FAILED says what the caller can do); INTERNAL, Nest's own 5xx and anything untyped become
 * `internal()`, with `errorId` set so the caller logs the real thing.
 */
export function toHttp(exception: unknown): { status: number; body: ErrorBody; errorId?: string } {
  if (isFlexmigError(exception)) {
    const status = httpStatusOf[exception.code];
    return status >= 500 && exception.code === ErrorCode.Internal ? internal() : { status, body: exception.toBody() };
  }
  const parserType = bodyParserType(exception);
  if (parserType === 'entity.too.large') {
    const limit = (exception as { limit?: number }).limit ?? (exception as { cause?: { limit?: number } }).cause?.limit;
    return {
      status: 413,
      body: new FlexmigError(ErrorCode.PayloadTooLarge, `the request body is larger than this service accepts${limit ? ` (${limit} bytes, HTTP_BODY_LIMIT)` : ''}`, limit ? { limitBytes: limit } : undefined).toBody(),
    };
  }
  if (parserType === 'entity.parse.failed') {
    return { status: 400, body: { code: ErrorCode.ValidationFailed, message: 'the request body is not valid JSON' } };
  }
  const transient = transientFailure(exception);
  if (transient) return { status: httpStatusOf[transient.code], body: transient.toBody() };
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status >= 500) return internal();
    const code = status === 404 ? ErrorCode.NotFound : ErrorCode.ValidationFailed;
    const response = exception.getResponse();
    const message = typeof response === 'string' ? response : ((response as { message?: string }).message ?? exception.message);
    return { status, body: { code, message: Array.isArray(message) ? message.join('; ') : String(message) } };
  }
  return internal();
}
