import { ConsoleLogger, type LogLevel } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { currentLogFields } from './log-context';

export const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];
export type LogFormat = 'json' | 'text';

/** LOG_FORMAT unset: text on a terminal (a developer), JSON otherwise (containers, CI, files, a log shipper). */
export function defaultLogFormat(stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  return stdout.isTTY ? 'text' : 'json';
}

type JsonLogOptions = Parameters<ConsoleLogger['getJsonLogObject']>[1];

/**
 * The one logger of every flexmig process (services, agents, the sim fleet). JSON: one object per line
 * with `level`, `timestamp`, `context`, `message`, the service's name, the migration fields in force
 * (`migrationId`, `vmId`, `hostId`, `step`, `stepName`: see withLogFields) and the active span's
 * `traceId`/`spanId`. Text: Nest's coloured lines, with the migration fields appended.
 */
export class FlexmigLogger extends ConsoleLogger {
  constructor(
    private readonly service: string,
    opts: { level: LogLevel; format: LogFormat },
  ) {
    super({ logLevels: LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(opts.level) + 1), json: opts.format === 'json' });
  }

  protected override getJsonLogObject(message: unknown, options: JsonLogOptions): ReturnType<ConsoleLogger['getJsonLogObject']> {
    const line = super.getJsonLogObject(message, options);
    const span = trace.getActiveSpan()?.spanContext();
    return {
      ...line,
      service: this.service,
      ...currentLogFields(),
      ...(span ? { traceId: span.traceId, spanId: span.spanId } : {}),
    };
  }

  protected override formatMessage(...args: Parameters<ConsoleLogger['formatMessage']>): string {
    const text = super.formatMessage(...args);
    const f = currentLogFields();
    const tags = Object.entries(f).map(([k, v]) => `${k}=${v}`);
    return tags.length === 0 ? text : `${text.replace(/\n$/, '')} [${tags.join(' ')}]\n`;
  }
}

export function createLogger(service: string, opts: { level: LogLevel; format?: LogFormat }): FlexmigLogger {
  return new FlexmigLogger(service, { level: opts.level, format: opts.format ?? defaultLogFormat() });
}
