import path from 'node:path';
import { z } from 'zod';
import { CommonEnvSchema, HttpEnvSchema, millis, port } from '@flexmig/service-kit';

const httpUrl = z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' });

export const ConsoleEnvSchema = CommonEnvSchema.extend(HttpEnvSchema.shape).extend({
  PORT: port(3000),
  /** Base URLs (origins) of the services the console routes `/api/v1/*` to, each by the paths it owns. */
  INVENTORY_URL: httpUrl.default('http://127.0.0.1:3001'),
  SCHEDULER_URL: httpUrl.default('http://127.0.0.1:3002'),
  CPU_COMPAT_URL: httpUrl.default('http://127.0.0.1:3003'),
  /** How long a routed request may go without a byte from its service (60 s: POST /vms waits up to 30 s for the agent). */
  PROXY_TIMEOUT_MS: millis(60_000),
  /** Live streams (SSE) this process serves at once; one more is refused with 503 until one ends. */
  SSE_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(200),
  /** A comment line on every idle live stream this often, so that proxies keep it open. */
  SSE_HEARTBEAT_MS: millis(15_000),
  /** The web console's built files (apps/console-web); by default dist/apps/console-web beside this bundle. */
  WEB_ROOT: z.string().min(1).optional(),
});
export type ConsoleEnv = z.infer<typeof ConsoleEnvSchema>;

/** The services behind the console, and the variable that says where each one is. */
export const serviceNames = ['inventory', 'scheduler', 'cpu-compat'] as const;
export type ServiceName = (typeof serviceNames)[number];
export const serviceUrlVariable: Record<ServiceName, 'INVENTORY_URL' | 'SCHEDULER_URL' | 'CPU_COMPAT_URL'> = {
  inventory: 'INVENTORY_URL',
  scheduler: 'SCHEDULER_URL',
  'cpu-compat': 'CPU_COMPAT_URL',
};

export interface ConsoleConfig {
  /** The console itself on loopback: its own OpenAPI document (the live streams) is read from there. */
  selfUrl: string;
  services: Record<ServiceName, string>;
  proxyTimeoutMs: number;
  bodyLimitBytes: number;
  maxStreams: number;
  heartbeatMs: number;
  /** Where the web console's built files are (index.html and assets/). */
  webRoot: string;
}
export const CONSOLE_CONFIG = Symbol('CONSOLE_CONFIG');

export function consoleConfig(env: ConsoleEnv): ConsoleConfig {
  return {
    selfUrl: `http://127.0.0.1:${env.PORT}`,
    services: { inventory: env.INVENTORY_URL, scheduler: env.SCHEDULER_URL, 'cpu-compat': env.CPU_COMPAT_URL },
    proxyTimeoutMs: env.PROXY_TIMEOUT_MS,
    bodyLimitBytes: env.HTTP_BODY_LIMIT,
    maxStreams: env.SSE_MAX_STREAMS,
    heartbeatMs: env.SSE_HEARTBEAT_MS,
    // the bundle runs as dist/apps/console/main.js; the web console is built into dist/apps/console-web
    webRoot: path.resolve(env.WEB_ROOT ?? path.join(__dirname, '..', 'console-web')),
  };
}
