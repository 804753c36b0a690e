import { Logger } from '@nestjs/common';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { withLogFields } from './log-context';
import { createLogger, defaultLogFormat } from './logger';

/** Captures what the logger writes to stdout, one parsed JSON object per line. */
function captureJson(run: () => void | Promise<void>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  }) as typeof process.stdout.write);
  return Promise.resolve(run())
    .finally(() => spy.mockRestore())
    .then(() => lines.map((l) => JSON.parse(l) as Record<string, unknown>));
}

describe('the JSON log line', () => {
  afterEach(() => Logger.overrideLogger(true));

  it('carries migrationId, vmId, hostId and step as fields, from the context around an unchanged log call', async () => {
    Logger.overrideLogger(createLogger('scheduler', { level: 'log', format: 'json' }));
    const log = new Logger('saga');
    const lines = await captureJson(async () => {
      await withLogFields({ migrationId: 'm-1', vmId: 'vm-1', hostId: 'host-a' }, async () => {
        await Promise.resolve();
        withLogFields({ step: 3, stepName: 'transfer-memory' }, () => log.log('step 3 transfer-memory done'));
      });
      log.warn('outside any migration');
    });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 'log',
      context: 'saga',
      service: 'scheduler',
      message: 'step 3 transfer-memory done',
      migrationId: 'm-1',
      vmId: 'vm-1',
      hostId: 'host-a',
      step: 3,
      stepName: 'transfer-memory',
    });
    expect(typeof lines[0].timestamp).toBe('number');
    expect(lines[1]).toMatchObject({ level: 'warn', message: 'outside any migration' });
    expect(lines[1]).not.toHaveProperty('migrationId');
  });

  it('carries the active span\'s traceId and spanId', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    const provider = new BasicTracerProvider();
    Logger.overrideLogger(createLogger('agent', { level: 'log', format: 'json' }));
    const log = new Logger('steps');
    const span = provider.getTracer('test').startSpan('agent step 2 transfer-config');
    const lines = await captureJson(() => context.with(trace.setSpan(context.active(), span), () => log.log('in a span')));
    span.end();
    expect(lines[0]).toMatchObject({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId });
    context.disable();
  });

  it('is not written below LOG_LEVEL', async () => {
    Logger.overrideLogger(createLogger('inventory', { level: 'warn', format: 'json' }));
    const lines = await captureJson(() => new Logger('x').log('not shown'));
    expect(lines).toEqual([]);
  });

  it('in text format, appends the fields to Nest\'s line', () => {
    Logger.overrideLogger(createLogger('agent', { level: 'log', format: 'text' }));
    const written: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: string) => written.push(String(chunk))) as unknown as typeof process.stdout.write);
    try {
      withLogFields({ migrationId: 'm-2', step: 6 }, () => new Logger('steps').log('transfer-state done'));
    } finally {
      spy.mockRestore();
    }
    expect(written.join('')).toMatch(/transfer-state done.* \[migrationId=m-2 step=6\]\n$/);
  });

  it('defaults to text on a terminal and JSON otherwise', () => {
    expect(defaultLogFormat({ isTTY: true })).toBe('text');
    expect(defaultLogFormat({ isTTY: false })).toBe('json');
    expect(defaultLogFormat({})).toBe('json');
  });
});
