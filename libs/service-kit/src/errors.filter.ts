import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { throwError } from 'rxjs';
import { ErrorBody, ErrorCode, FlexmigError, httpStatusOf, isFlexmigError } from '@flexmig/contracts';

/**
 * The edge where typed errors become the wire shape `{code, message, details}`: HTTP responses get the
 * status of the code; RPC (NATS) handlers rethrow so the transport builds the error reply.
 */
/** The part of Express's response the filter uses. */
interface HttpResponse {
  status(code: number): { json(body: unknown): void };
}

@Catch()
export class ErrorsFilter implements ExceptionFilter {
  private readonly log = new Logger('errors');

  catch(exception: unknown, host: ArgumentsHost) {
    if (host.getType() === 'rpc') return throwError(() => exception);
    const { status, body } = toHttp(exception);
    if (status >= 500) this.log.error(`${body.code}: ${body.message}`, (exception as Error)?.stack);
    host.switchToHttp().getResponse<HttpResponse>().status(status).json(body);
    return undefined;
  }
}

export function toHttp(exception: unknown): { status: number; body: ErrorBody } {
  if (isFlexmigError(exception)) return { status: httpStatusOf[exception.code], body: exception.toBody() };
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const code = status === 404 ? ErrorCode.NotFound : status < 500 ? ErrorCode.ValidationFailed : ErrorCode.Internal;
    const response = exception.getResponse();
    const message = typeof response === 'string' ? response : ((response as { message?: string }).message ?? exception.message);
    return { status, body: { code, message: Array.isArray(message) ? message.join('; ') : String(message) } };
  }
  if ((exception as { type?: string })?.type === 'entity.parse.failed') {
    return { status: 400, body: { code: ErrorCode.ValidationFailed, message: 'the request body is not valid JSON' } };
  }
  return {
    status: 500,
    body: new FlexmigError(ErrorCode.Internal, `internal error: ${(exception as Error)?.message ?? String(exception)}`).toBody(),
  };
}
