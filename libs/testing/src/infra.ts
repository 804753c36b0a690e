import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { sleep } from '@flexmig/timing';
import type { ServiceRole } from '@flexmig/nats-auth';
// servers.ts imports waitFor from here: a cycle both sides use only inside functions, after loading
import { NatsServerProcess } from './servers';
import { defaultTestToken } from './auth';

/**
 * Real NATS and PostgreSQL for integration and end-to-end tests. Where a Docker engine answers, fresh
 * containers (testcontainers); otherwise the machine's local services (TEST_NATS_URL, TEST_DATABASE_URL,
 * defaulting to 127.0.0.1). Either way each suite gets its own database and its own subject prefix, so
 * suites never see each other's data or messages.
 */

const localNatsUrl = () => process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const localPgUrl = () => process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let dockerChecked: Promise<boolean> | undefined;

/** True when testcontainers can start containers here (a Docker socket that answers). */
export function dockerAvailable(): Promise<boolean> {
  dockerChecked ??= (async () => {
    if (process.env.FLEXMIG_TEST_NO_DOCKER === '1') return false;
    const socket = process.env.DOCKER_HOST ?? '/var/run/docker.sock';
    if (!process.env.DOCKER_HOST && !existsSync(socket)) return false;
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      const client = await Promise.race([
        getContainerRuntimeClient(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('docker did not answer')), 5_000)),
      ]);
      return Boolean(client);
    } catch {
      return false;
    }
  })();
  return dockerChecked;
}

export const uniqueSuffix = () => `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

export interface TestNats {
  url: string;
  prefix: string;
  stop(): Promise<void>;
  /** A service's NATS_CREDS (with auth; nothing without). */
  serviceEnv(role: ServiceRole): Record<string, string>;
  /** An agent's NATS_CREDS, issued now for its host (with auth; nothing without). */
  agentEnv(hostId: string): Promise<Record<string, string>>;
  /** Connection options of the test's own observer, which may look at every subject (credentials with auth). */
  observer(): Partial<NodeConnectionOptions>;
}

/**
 * NATS with JetStream and a subject prefix of the suite's own. With `auth`, a nats-server process of the
 * suite's own in operator mode, configured as `flexmig auth init` configures it: each process then
 * connects with its own identity (serviceEnv, agentEnv). Without, the shared server (or a container).
 */
export async function startTestNats(suite: string, opts: { auth?: boolean } = {}): Promise<TestNats> {
  const prefix = `t_${suite.replace(/[^A-Za-z0-9]/g, '_')}_${uniqueSuffix()}`;
  const anonymous = { serviceEnv: () => ({}), agentEnv: async () => ({}), observer: () => ({}) };
  if (opts.auth) {
    const server = await new NatsServerProcess({ auth: { prefix } }).start();
    return {
      url: server.url,
      prefix,
      stop: () => server.destroy(),
      serviceEnv: (role) => server.serviceEnv(role),
      agentEnv: (hostId) => server.agentEnv(hostId),
      observer: () => ({ authenticator: credsAuthenticator(readFileSync(server.observerCreds)) }),
    };
  }
  if (await dockerAvailable()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('nats:2.10-alpine')
      .withCommand(['-js'])
      .withExposedPorts(4222)
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .start();
    return {
      url: `nats://${container.getHost()}:${container.getMappedPort(4222)}`,
      prefix,
      ...anonymous,
      stop: async () => {
        await container.stop();
      },
    };
  }
  const url = localNatsUrl();
  return {
    url,
    prefix,
    ...anonymous,
    stop: async () => {
      // remove the suite's events stream from the shared local server
      const nc = await connect({ servers: url }).catch(() => undefined);
      if (!nc) return;
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.delete(`${prefix.toUpperCase()}_EVENTS`).catch(() => undefined);
      } finally {
        await nc.close();
      }
    },
  };
}

export interface TestDatabase {
  /** postgres:// URL of a database that belongs to this suite alone. */
  url: string;
  name: string;
  stop(): Promise<void>;
}

/** A fresh, empty database of the suite's own (the service under test creates its schema in it). */
export async function startTestDatabase(suite: string): Promise<TestDatabase> {
  const name = `flexmig_t_${suite.replace(/[^A-Za-z0-9]/g, '_').toLowerCase()}_${uniqueSuffix()}`.slice(0, 63);
  if (await dockerAvailable()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('postgres:15-alpine')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    return {
      url: `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/${name}`,
      name,
      stop: async () => {
        await container.stop();
      },
    };
  }
  const admin = localPgUrl();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    stop: async () => {
      const client = new Client({ connectionString: admin });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Thrown by a probe of `waitFor` when waiting longer cannot help (what it waits for can no longer happen). */
export class StopWaiting extends Error {}

/**
 * Polls until `probe` returns a value (not undefined/false), or fails naming what it waited for. A probe that
 * throws is asked again (the last error goes in the failure), except for StopWaiting, which ends the wait at once.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      if (e instanceof StopWaiting) throw e;
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export interface JsonReply {
  status: number;
  headers?: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read replies of every shape; the assertion is the check
}

export interface HttpOptions {
  /** The bearer token; default an admin token of the test secret (testing/auth); null sends none. */
  token?: string | null;
  headers?: Record<string, string>;
}

/**
 * One JSON request to a service's HTTP API, as an admin unless `opts.token` says otherwise. A string
 * body is sent as it is (to test malformed JSON); anything else is JSON-encoded. The reply body is parsed
 * JSON, or undefined when empty; `headers` are the reply's.
 */
export async function httpJson(base: string, method: string, route: string, body?: unknown, opts: HttpOptions = {}): Promise<JsonReply> {
  const token = opts.token === undefined ? await defaultTestToken() : opts.token;
  const res = await fetch(`${base}${route}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...opts.headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text; // not JSON (an HTML error page): the assertion will show it
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/**
 * The events of one type a suite's services published so far (CloudEvents from the suite's JetStream
 * stream, oldest first), read by a consumer made now on a connection of its own.
 */
export async function readEvents<D = Record<string, unknown>>(natsUrl: string, prefix: string, type: string): Promise<{ id: string; type: string; data: D }[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const js = jetstream(nc);
    // one filter subject: nats-server 2.9 has no filter lists
    const consumer = await js.consumers.get(`${prefix.toUpperCase()}_EVENTS`, { filter_subjects: `${prefix}.events.${type}` });
    const out: { id: string; type: string; data: D }[] = [];
    const messages = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
    for await (const m of messages) {
      out.push(m.json());
      if (m.info.pending === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}
