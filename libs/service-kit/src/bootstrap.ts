import { setFlagsFromString } from 'node:v8';
import { DynamicModule, INestApplication, Logger, LogLevel, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import { isFlexmigError } from '@flexmig/contracts';
import { NatsBus, NatsContractTransport, Params } from '@flexmig/messaging';
import { ReadinessRegistry } from './health';
import { openApiDocument } from './openapi/document';
import { configureHttp } from './http';
import { type AuthSettings, ConfigurationError } from './auth';
import { createLogger, type LogFormat } from './observability/logger';
import { startTracing, stopTracing } from './observability/tracing';

export interface ServiceSpec {
  /** `inventory`, `scheduler`, `cpu-compat`, `agent` */
  name: string;
  version?: string;
  description: string;
  port: number;
  logLevel: string;
  /** LOG_FORMAT; unset: text on a terminal, json otherwise. */
  logFormat?: LogFormat;
  /** Builds the root module once the bus is connected. */
  module: (bus: NatsBus) => Type<unknown> | DynamicModule | Promise<Type<unknown> | DynamicModule>;
  /** From natsBusEnv(env): URL, prefix, and the identity (NATS_CREDS) and TLS CA (NATS_TLS_CA) if set. */
  bus: { url: string; prefix: string; credsFile?: string; tlsCaFile?: string };
  /** Make sure the events stream exists at start (services that publish events). Default true. */
  events?: boolean;
  /** Subject parameters for `@MessagePattern` templates (the agent's `{hostId}`). */
  subjectParams?: Params;
  /** Queue group for request handlers, so replicas share the work. Defaults to the service name. */
  queue?: string | null;
  openApi?: boolean;
  /**
   * Who may call the HTTP API (`authSettingsFromEnv`). Omitted only by a service whose routes are all
   * public (the agent: /health and /metrics); a guarded route then stops the service from starting.
   */
  auth?: AuthSettings;
  /** Largest JSON request body in bytes (HTTP_BODY_LIMIT); default 256 KiB. */
  bodyLimitBytes?: number;
  /** False: request bodies reach the routes unread, as streams (the console's proxy). Default true. */
  parseBodies?: boolean;
}

export interface RunningService {
  app: INestApplication;
  bus: NatsBus;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts one flexmig service: NATS first (a plain message and exit 1 when it cannot be reached),
 * then the Nest app with its HTTP API, OpenAPI document at /api/docs, /health/* and /metrics,
 * and the NATS transport for its @MessagePattern handlers.
 */
export async function startService(spec: ServiceSpec): Promise<RunningService> {
  const processLogger = createLogger(spec.name, { level: spec.logLevel as LogLevel, format: spec.logFormat });
  Logger.overrideLogger(processLogger);
  const logger = new Logger(spec.name);
  if (!spec.bus.credsFile) warnAnonymous(logger);
  const bus = await NatsBus.connect({ ...spec.bus, name: spec.name });
  if (spec.events !== false) await bus.ensureEventsStream();
  const rootModule = await spec.module(bus);
  const app = await NestFactory.create(rootModule, {
    logger: processLogger,
    abortOnError: false,
    // configureHttp installs the parsers, with an explicit limit
    bodyParser: false,
  });
  app.enableShutdownHooks();
  try {
    configureHttp(app, { auth: spec.auth, bodyLimitBytes: spec.bodyLimitBytes, parseBodies: spec.parseBodies }, logger);
  } catch (e) {
    await app.close();
    await bus.close();
    throw e;
  }
  app.get(ReadinessRegistry).add({ name: 'nats', check: async () => bus.isConnected() });
  app.connectMicroservice(
    { strategy: new NatsContractTransport(bus, { queue: spec.queue === null ? undefined : (spec.queue ?? spec.name), params: spec.subjectParams }) },
    { inheritAppConfig: true },
  );
  if (spec.openApi !== false) {
    const doc = openApiDocument(app, { name: spec.name, description: spec.description, version: spec.version });
    SwaggerModule.setup('api/docs', app, doc, { jsonDocumentUrl: 'api/docs-json' });
  }
  await app.startAllMicroservices();
  await app.listen(spec.port, '0.0.0.0');
  const url = `http://127.0.0.1:${spec.port}`;
  logger.log(`${spec.name} listening on ${url} (NATS ${spec.bus.url}, prefix ${spec.bus.prefix}${spec.bus.credsFile ? `, identity ${spec.bus.credsFile}` : ', no identity'}${spec.bus.tlsCaFile ? ', TLS' : ''})`);
  return {
    app,
    bus,
    url,
    close: async () => {
      await app.close();
    },
  };
}

/** Without credentials anyone who reaches NATS may do what this service does: say so at every start. */
export function warnAnonymous(logger: Pick<Logger, 'warn'>): void {
  logger.warn(
    'NATS_CREDS is not set: connecting to NATS without an identity. Any client that reaches this NATS server can then ' +
      'command agents and publish events. Run with identities (flexmig auth init; docs/security.md) outside a sandbox.',
  );
}

/**
 * V8 flags every service sets as its main starts: one place for the image, the chart, compose and the
 * launcher (NODE_OPTIONS does not take V8 flags).
 *
 * `--no-allocation-site-pretenuring`: V8 learns per allocation site whether its objects outlive young
 * collections, and then allocates them in the old generation. The pg driver's row parsing is one set of
 * sites for every query, so a large read whose rows live a while (the reconciliation pass, a page of 1,000)
 * sent every later query's rows to the old generation, where they die in major collections. Inventory
 * walking pages of VMs at 10,500 VMs for 6 s spent 311–564 ms in 27–45 collections of over 2 ms with it,
 * 0–21 ms in 0–6 without; it answered 12 % more pages of 1,000 VMs, their p99 16.0–16.5 ms against
 * 22.5–29.4 ms (docs/scale.md, "Pretenuring").
 */
export const SERVICE_V8_FLAGS = ['--no-allocation-site-pretenuring'] as const;

/** Sets SERVICE_V8_FLAGS (node:v8's setFlagsFromString unless given another setter). */
export function applyServiceV8Flags(set: (flag: string) => void = setFlagsFromString): void {
  for (const flag of SERVICE_V8_FLAGS) set(flag);
}

/** `main.ts` wrapper: sets SERVICE_V8_FLAGS; any start-up failure is printed plainly (what, why, what to do) and exits 1. */
export function runMain(name: string, start: () => Promise<unknown>): void {
  applyServiceV8Flags();
  // A stray rejected promise is a bug to fix, not a reason to drop every migration this process drives.
  process.on('unhandledRejection', (e) => console.error(`${name}: unhandled rejection (a bug; the service keeps running):`, e));
  // spans go out over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; what is buffered is sent on the way out
  if (startTracing(name)) for (const signal of ['SIGTERM', 'SIGINT'] as const) process.prependListener(signal, () => void stopTracing());
  start().catch((e) => {
    const what = isFlexmigError(e) || e instanceof ConfigurationError ? e.message : ((e as Error)?.stack ?? String(e));
    console.error(`${name} could not start: ${what}`);
    process.exit(1);
  });
}
