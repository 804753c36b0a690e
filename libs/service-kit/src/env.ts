import { z } from 'zod';

/** Variables every service reads. Each app extends this with its own and validates once at boot. */
export const CommonEnvSchema = z.object({
  NATS_URL: z.string().default('nats://127.0.0.1:4222'),
  /** Subject prefix of the deployment; tests give each suite its own. */
  SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'a single NATS token: letters, digits, - or _')
    .default('flexmig'),
  LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
  /** `json`: one object per line with the migration fields (docs/observability.md); `text`: Nest's lines. Unset: text on a terminal, json otherwise. */
  LOG_FORMAT: z.enum(['json', 'text']).optional(),
  /**
   * This process's NATS identity: a credentials file from `flexmig auth` (docs/security.md). Unset: the
   * connection is anonymous, which only a NATS server without authentication accepts (a warning at start).
   */
  NATS_CREDS: z.string().min(1).optional(),
  /** CA certificate (PEM) to verify the NATS server with; set, the connection requires TLS. */
  NATS_TLS_CA: z.string().min(1).optional(),
  /**
   * How often this process pings NATS; two pings unanswered and it reconnects. A partition that sends no
   * reset is seen after 2–3 intervals (docs/observability.md, "While a server is away").
   */
  NATS_PING_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /**
   * The JetStream events stream, applied by whichever service creates it first (an existing stream is not
   * altered: `nats stream edit` changes it). Replicas: 1, or 3 on a NATS cluster of three; at most 5.
   */
  EVENTS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** How long events are kept for replay: a duration such as 500ms, 90s, 30m, 12h or 7d. */
  EVENTS_MAX_AGE: z
    .string()
    .regex(/^\d+(ms|s|m|h|d)$/, 'a duration: digits and a unit of ms, s, m, h or d (e.g. 7d)')
    .default('7d')
    .transform(durationMs)
    .refine((ms) => ms >= 1000, 'at least 1s'),
  /** The stream's size limit in bytes, oldest events dropped first; -1: no limit. */
  EVENTS_MAX_BYTES: z.coerce.number().int().min(-1).default(-1),
});

const durationUnitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Milliseconds of a duration such as `7d` or `500ms` (already checked against /^\d+(ms|s|m|h|d)$/). */
export function durationMs(text: string): number {
  const [, digits, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(text) ?? [];
  if (!digits) throw new Error(`not a duration: ${text}`);
  return Number(digits) * durationUnitMs[unit as keyof typeof durationUnitMs];
}

/** The NatsBus options of a service from its environment. */
export function natsBusEnv(env: z.infer<typeof CommonEnvSchema>): {
  url: string;
  prefix: string;
  credsFile?: string;
  tlsCaFile?: string;
  pingIntervalMs: number;
  events: { replicas: number; maxAgeMs: number; maxBytes: number };
} {
  return {
    url: env.NATS_URL,
    prefix: env.SUBJECT_PREFIX,
    pingIntervalMs: env.NATS_PING_INTERVAL_MS,
    events: { replicas: env.EVENTS_STREAM_REPLICAS, maxAgeMs: env.EVENTS_MAX_AGE, maxBytes: env.EVENTS_MAX_BYTES },
    ...(env.NATS_CREDS ? { credsFile: env.NATS_CREDS } : {}),
    ...(env.NATS_TLS_CA ? { tlsCaFile: env.NATS_TLS_CA } : {}),
  };
}

export const DatabaseEnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .default('postgres://postgres@127.0.0.1:5432/flexmig'),
});

/**
 * Variables of the services with an HTTP API (inventory, scheduler, cpu-compat): who may call it
 * (docs/security.md, "HTTP") and how big a request body may be. Which of them must be set is checked by
 * `authSettingsFromEnv`, which says what to set.
 */
export const HttpEnvSchema = z.object({
  /** `off` turns bearer-token checks off: a developer loop only; the service warns at every start. */
  AUTH: z.enum(['on', 'off']).default('on'),
  /** A file holding the HS256 key of the tokens as base64url text (`npx flexmig auth init` writes one). */
  AUTH_JWT_SECRET_FILE: z.string().min(1).optional(),
  /** An OIDC issuer whose tokens are accepted (its `iss`), with AUTH_JWKS_URL, the URL of its signing keys. */
  AUTH_OIDC_ISSUER: z.string().min(1).optional(),
  AUTH_JWKS_URL: z.url().optional(),
  /** The `aud` an OIDC issuer's tokens must carry (the shared-secret tokens always carry "flexmig"). */
  AUTH_AUDIENCE: z.string().min(1).default('flexmig'),
  /** Largest JSON request body, in bytes; a bigger one is refused with 413 (256 KiB: far above any real request). */
  HTTP_BODY_LIMIT: z.coerce.number().int().min(1024).default(262_144),
});
export type HttpEnv = z.infer<typeof HttpEnvSchema>;

export const port = (fallback: number) => z.coerce.number().int().min(1).max(65535).default(fallback);
export const millis = (fallback: number) => z.coerce.number().int().min(1).default(fallback);

/** Parses the environment; on failure prints every bad variable and what it should be, then exits 1. */
export function loadEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
  console.error(`invalid configuration:\n${lines.join('\n')}\nSee .env.example and the README for every variable.`);
  process.exit(1);
}
