import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  errors,
  headers as natsHeaders,
  nanos,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type NodeConnectionOptions,
  type Subscription,
} from '@nats-io/transport-node';
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { context, propagation, ROOT_CONTEXT, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { z } from 'zod';
import {
  CloudEvent,
  ErrorBody,
  ErrorCode,
  EventContract,
  EventDataOf,
  FlexmigError,
  MessageContract,
  MessageOf,
  ReplyOf,
  RequestContract,
  RequestOf,
  eventsSubjectRoot,
  EVENTS_STREAM_SUFFIX,
  fillSubject,
  isFlexmigError,
  replyEnvelopeOf,
  transientFailure,
  validationError,
} from '@flexmig/contracts';
import { Repeats } from '@flexmig/timing';
import { inSpan, SpanKind, traceparentOf } from './trace';

export interface NatsBusOptions {
  /** e.g. nats://127.0.0.1:4222 */
  url: string;
  /** Subject prefix of this deployment (one per test suite): `flexmig` by default. */
  prefix: string;
  /** Connection name shown by the NATS server (monitoring), e.g. `scheduler`. */
  name: string;
  /** Default request timeout. */
  requestTimeoutMs?: number;
  /** How long to wait for the first connection before giving up with advice. */
  connectTimeoutMs?: number;
  /**
   * How often the client pings the server (NATS_PING_INTERVAL_MS, default 10 s). Two pings unanswered and
   * the connection counts as stale: closed, then reconnected. That is how a silent partition (no reset, no
   * FIN) is seen at all; nats.js's own default, 2 minutes, left a service up to 6 minutes believing it was
   * connected, its outboxes holding transactions open for publishes that could not go out.
   */
  pingIntervalMs?: number;
  /**
   * A NATS credentials file (user JWT and seed, `flexmig auth`): the process's identity. Replies then
   * come back on the identity's own inbox prefix, `_INBOX.<user name>`, which its permissions let it
   * alone read. Without it the connection is anonymous (NATS without authentication).
   */
  credsFile?: string;
  /** CA certificate (PEM file) to verify the server with: the connection then requires TLS. */
  tlsCaFile?: string;
  /** The events stream this process creates when it is missing (default: 1 replica, a week, no size limit). */
  events?: EventsStreamOptions;
}

export interface EventsStreamOptions {
  /** JetStream replicas: 1, or 3 on a NATS cluster of three. */
  replicas?: number;
  /** How long events are kept for replay. */
  maxAgeMs?: number;
  /** Size limit in bytes, oldest dropped first; -1: none. */
  maxBytes?: number;
}

export type Params = Record<string, string>;

/** What travels back on a request's reply subject. Plain JSON any language can produce. */
export type ReplyEnvelope = { ok: true; data: unknown } | { ok: false; error: ErrorBody };

const ReplyEnvelopeSchema = replyEnvelopeOf(z.unknown());

export const defaultRequestTimeoutMs = 5_000; // long enough for a PostgreSQL commit under load; steps pass their own
export const defaultPingIntervalMs = 10_000;
/**
 * The events stream's retention and replay policy (docs/events.md; docs/asyncapi.yaml carries it as
 * `x-flexmig-stream`): file storage, limits retention (subscribers do not consume messages away: each
 * durable consumer keeps its own position), the oldest dropped first, a week of history to replay, and
 * re-publishes with the same CloudEvents id within 10 minutes (a crash between publish and ack) dropped.
 * These are the defaults: a deployment sets replicas, age and size with EVENTS_STREAM_REPLICAS,
 * EVENTS_MAX_AGE and EVENTS_MAX_BYTES (NatsBusOptions.events).
 */
export const EVENTS_STREAM_POLICY = {
  storage: 'file',
  retention: 'limits',
  discard: 'old',
  maxAgeMs: 7 * 24 * 3600 * 1000,
  duplicateWindowMs: 10 * 60 * 1000,
  replicas: 1,
} as const;

/** JetStream API error code of "stream name already in use" (nats-server's JSStreamNameExistErr). */
const streamNameInUse = 10058;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (v: unknown) => encoder.encode(JSON.stringify(v));

/**
 * How every service connects and reconnects (exported for the tests that connect as a service does).
 * nats.js gives up reconnecting after the same authentication error twice in a row, whatever
 * maxReconnectAttempts says. A server that applies a reload (a host revoked: `flexmig auth revoke-agent`)
 * disconnects the other connections of the account too and may let their reconnects run past its auth
 * timeout ("Authentication Timeout", twice in a row in the NATS e2e test): the service would then stay
 * disconnected for good. So it keeps trying, and says why while it does (`reportConnectionErrors`).
 */
export const SERVICE_RECONNECT = {
  maxReconnectAttempts: -1, // a NATS restart must not kill the service: reconnect forever
  reconnectTimeWait: 250,
  ignoreAuthErrorAbort: true,
} as const;

/**
 * One NATS connection per process, speaking the contracts of `@flexmig/contracts`: every request,
 * reply, message and event is validated against its schema on both sides.
 */
export class NatsBus {
  private jsm?: JetStreamManager;
  private js?: JetStreamClient;
  private disconnected = false;
  private readonly reconnectListeners = new Set<() => void>();

  private constructor(
    readonly nc: NatsConnection,
    readonly options: NatsBusOptions & Required<Pick<NatsBusOptions, 'requestTimeoutMs' | 'connectTimeoutMs'>>,
  ) {}

  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    const opts = {
      requestTimeoutMs: defaultRequestTimeoutMs,
      connectTimeoutMs: 5_000,
      pingIntervalMs: defaultPingIntervalMs,
      ...options,
    };
    const security = natsSecurityOptions(opts);
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: opts.url,
        name: opts.name,
        timeout: opts.connectTimeoutMs,
        pingInterval: opts.pingIntervalMs,
        maxPingOut: 2,
        ...SERVICE_RECONNECT,
        waitOnFirstConnect: false,
        // no Error (with its stack) built ahead of every request for a timeout that rarely comes: 2 % of
        // inventory's CPU while VMs are created (bench/scale profile); our timeouts carry their own message
        noAsyncTraces: true,
        ...security,
      });
    } catch (e) {
      if (e instanceof errors.AuthorizationError) {
        throw new FlexmigError(
          ErrorCode.Unavailable,
          `NATS at ${opts.url} refused this process's identity (${e.message}): ` +
            (opts.credsFile ? `check that ${opts.credsFile} was issued for this server (flexmig auth)` : 'the server requires credentials: set NATS_CREDS'),
          { url: opts.url },
        );
      }
      throw new FlexmigError(
        ErrorCode.Unavailable,
        `cannot reach NATS at ${opts.url} (${(e as Error).message}). Start it with JetStream enabled, e.g. ` +
          '`nats-server -js` (Debian: apt-get install nats-server), or set NATS_URL to a server that runs.',
        { url: opts.url },
      );
    }
    const bus = new NatsBus(nc, opts);
    bus.watchConnection();
    return bus;
  }

  /**
   * Follows the connection: whether it is up (`reachable`), the reconnect that ends an outage
   * (`onReconnect`), and why it is down while it reconnects (an identity refused, a server not answering
   * the handshake), said at most once per `reportEveryMs` for the same message: it retries every 250 ms
   * for ever.
   */
  private watchConnection(reportEveryMs = 30_000): void {
    const connectionErrors = new Repeats({ warn: (line) => console.warn(line), log: (line) => console.log(line) }, reportEveryMs);
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') this.disconnected = true;
        if (s.type === 'reconnect') {
          this.disconnected = false;
          connectionErrors.recovered(`[nats] ${this.options.url}: the connection`);
          for (const listener of this.reconnectListeners) {
            try {
              listener();
            } catch (e) {
              console.warn(`[nats] a reconnect listener failed: ${(e as Error).message}`);
            }
          }
        }
        if (s.type !== 'error') continue;
        const message = s.error.message;
        connectionErrors.failed(`[nats] ${this.options.url}: ${message}; reconnecting (a refused identity: check its creds file, flexmig auth)`, message);
      }
    })().catch(() => undefined);
  }

  get prefix(): string {
    return this.options.prefix;
  }

  /** Absolute subject for a contract's template. */
  subject(template: string, params?: Params): string {
    return `${this.options.prefix}.${fillSubject(template, params)}`;
  }

  /**
   * What to subscribe to for a contract: its template with the given parameters, and `*` for those not
   * given (inventory hears every host's `inventory.host.{hostId}.heartbeat`; an agent only its own).
   */
  subscriptionSubject(template: string, params: Params = {}): string {
    const all: Params = { ...params };
    for (const [, name] of template.matchAll(/\{(\w+)\}/g)) all[name] ??= '*';
    return `${this.options.prefix}.${fillSubject(template, all)}`;
  }

  // ---- request/reply ----

  async request<C extends RequestContract>(
    contract: C,
    payload: RequestOf<C>,
    opts: { params?: Params; timeoutMs?: number } = {},
  ): Promise<ReplyOf<C>> {
    const checked = contract.request.safeParse(payload);
    if (!checked.success) throw validationError(`request ${contract.subject}`, checked.error);
    const subject = this.subject(contract.subject, opts.params);
    const timeout = opts.timeoutMs ?? this.options.requestTimeoutMs;
    const send = async (): Promise<Msg> => {
      try {
        return await this.nc.request(subject, encode(checked.data), { timeout, ...traceHeaders() });
      } catch (e) {
        throw classifyRequestError(e, subject, timeout, !this.reachable);
      }
    };
    // a client span only inside a trace: background requests (reconciliation, checks) start none of their own
    const msg = trace.getActiveSpan()
      ? await inSpan(`nats request ${contract.subject}`, { kind: SpanKind.CLIENT, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject } }, send)
      : await send();
    const envelope = ReplyEnvelopeSchema.safeParse(safeJson(msg.data));
    if (!envelope.success) {
      throw new FlexmigError(ErrorCode.Internal, `the reply on ${subject} is not a flexmig reply envelope`);
    }
    if (!envelope.data.ok) throw FlexmigError.fromBody(envelope.data.error);
    const reply = contract.reply.safeParse(envelope.data.data);
    if (!reply.success) {
      throw new FlexmigError(ErrorCode.Internal, `the reply on ${subject} does not match its contract`, {
        issues: reply.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      });
    }
    return reply.data as ReplyOf<C>;
  }

  /**
   * Answers a contract's requests. The handler gets validated input; whatever it throws becomes an error
   * reply (a FlexmigError keeps its code; anything else is INTERNAL), so a bad message never crashes
   * the process and is never half-applied by this layer.
   */
  handle<C extends RequestContract>(
    contract: C,
    handler: (request: RequestOf<C>, subject: string) => Promise<ReplyOf<C>>,
    opts: { params?: Params; queue?: string } = {},
  ): Subscription {
    return this.subscribeRaw(this.subscriptionSubject(contract.subject, opts.params), opts.queue, async (msg) => {
      this.respond(contract, msg, await answer(contract, msg, handler));
    });
  }

  /** Like {@link handle} for callers that already hold a handler taking unknown input (the Nest transport). */
  async answerRaw(contract: RequestContract, msg: Msg, handler: (request: unknown) => Promise<unknown>): Promise<void> {
    this.respond(contract, msg, await answer(contract, msg, handler));
  }

  /**
   * Sends a reply. One larger than the server's max_payload (1 MiB by default) cannot be sent: the asker
   * would only see a timeout. It gets PAYLOAD_TOO_LARGE instead, saying how large and what to ask for.
   */
  private respond(contract: RequestContract, msg: Msg, envelope: ReplyEnvelope): void {
    const data = encode(envelope);
    const max = this.nc.info?.max_payload;
    if (max === undefined || data.length <= max) {
      msg.respond(data);
      return;
    }
    const paged = 'limit' in ((contract.request as { shape?: Record<string, unknown> }).shape ?? {});
    const error = new FlexmigError(
      ErrorCode.PayloadTooLarge,
      `the reply of ${contract.subject} is ${data.length} bytes, more than this NATS server's max_payload of ${max}: ` +
        (paged ? 'ask for a smaller page (limit) and follow nextCursor' : 'ask for less at a time'),
      { replyBytes: data.length, maxPayload: max },
      false,
    );
    console.error(`[nats] ${error.message}`);
    msg.respond(encode({ ok: false, error: error.toBody() } satisfies ReplyEnvelope));
  }

  subscribeRaw(subject: string, queue: string | undefined, onMessage: (msg: Msg) => Promise<void>): Subscription {
    // a callback, not the subscription's async iterator: that costs a promise per message, and a fleet's
    // heartbeats are hundreds a second (issue 11). Handlers run concurrently either way.
    return this.nc.subscribe(subject, {
      ...(queue ? { queue } : {}),
      callback: (err, msg) => {
        if (err) {
          console.error(`[nats] subscription ${subject}: ${err.message}`);
          return;
        }
        handleTraced(subject, msg, onMessage).catch((e) => console.error(`[nats] handler for ${subject} failed:`, e));
      },
    });
  }

  // ---- fire-and-forget messages (core NATS) ----

  publish<C extends MessageContract>(contract: C, message: MessageOf<C>, params?: Params): void {
    const checked = contract.message.safeParse(message);
    if (!checked.success) throw validationError(`message ${contract.subject}`, checked.error);
    this.nc.publish(this.subject(contract.subject, params), encode(checked.data), traceHeaders());
  }

  subscribe<C extends MessageContract>(
    contract: C,
    handler: (message: MessageOf<C>, subject: string) => Promise<void> | void,
    opts: { params?: Params; queue?: string } = {},
  ): Subscription {
    const subject = this.subscriptionSubject(contract.subject, opts.params);
    return this.subscribeRaw(subject, opts.queue, async (msg) => {
      const parsed = contract.message.safeParse(safeJson(msg.data));
      if (!parsed.success) {
        console.warn(`[nats] dropped a malformed message on ${msg.subject}: ${parsed.error.message}`);
        return;
      }
      await handler(parsed.data as MessageOf<C>, msg.subject);
    });
  }

  // ---- events (JetStream, CloudEvents) ----

  get eventsStream(): string {
    return `${this.options.prefix.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_${EVENTS_STREAM_SUFFIX}`;
  }

  eventSubject(type: string): string {
    return `${this.options.prefix}.${eventsSubjectRoot}.${type}`;
  }

  /** Creates the events stream when missing. Safe to call from every service at start. */
  async ensureEventsStream(): Promise<void> {
    const jsm = await this.jetstreamManager();
    const maxAgeMs = this.options.events?.maxAgeMs ?? EVENTS_STREAM_POLICY.maxAgeMs;
    const config = {
      name: this.eventsStream,
      subjects: [`${this.options.prefix}.${eventsSubjectRoot}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      // JetStream refuses a de-duplication window longer than the stream's max age
      duplicate_window: nanos(Math.min(EVENTS_STREAM_POLICY.duplicateWindowMs, maxAgeMs)),
      max_age: nanos(maxAgeMs),
      max_bytes: this.options.events?.maxBytes ?? -1,
      num_replicas: this.options.events?.replicas ?? EVENTS_STREAM_POLICY.replicas,
    };
    try {
      await jsm.streams.info(config.name);
    } catch (e) {
      if (!isStreamNotFound(e)) throw classifyJetStreamError(e);
      try {
        await jsm.streams.add(config);
      } catch (addError) {
        // another service created it in the meantime
        if (!(addError instanceof JetStreamApiError && addError.code === streamNameInUse)) throw classifyJetStreamError(addError);
      }
    }
  }

  /**
   * Publishes an event in a CloudEvents envelope. `id` must be deterministic for the fact it reports
   * (it is the JetStream de-duplication id), e.g. `${migrationId}:completed`.
   */
  async publishEvent<C extends EventContract>(
    contract: C,
    data: EventDataOf<C>,
    opts: { id: string; subject?: string; source: string; time?: Date; traceparent?: string },
  ): Promise<CloudEvent<EventDataOf<C>>> {
    // the CloudEvents distributed-tracing extension: the trace the event belongs to (default: the active one)
    const traceparent = opts.traceparent ?? traceparentOf();
    const checked = contract.data.safeParse(data);
    if (!checked.success) throw validationError(`event ${contract.type}`, checked.error);
    const event: CloudEvent<EventDataOf<C>> = {
      specversion: '1.0',
      id: opts.id,
      source: opts.source,
      type: contract.type,
      ...(opts.subject ? { subject: opts.subject } : {}),
      time: (opts.time ?? new Date()).toISOString(),
      datacontenttype: 'application/json',
      ...(traceparent ? { traceparent } : {}),
      data: checked.data as EventDataOf<C>,
    };
    const js = await this.jetstream();
    const h = natsHeaders();
    h.set('Nats-Msg-Id', opts.id);
    h.set('ce-type', contract.type);
    if (traceparent) h.set('traceparent', traceparent);
    try {
      await js.publish(this.eventSubject(contract.type), encode(event), { msgID: opts.id, headers: h });
    } catch (e) {
      throw classifyJetStreamError(e);
    }
    return event;
  }

  async jetstreamManager(): Promise<JetStreamManager> {
    this.jsm ??= await jetstreamManager(this.nc);
    return this.jsm;
  }

  async jetstream(): Promise<JetStreamClient> {
    this.js ??= jetstream(this.nc);
    return this.js;
  }

  /**
   * For readiness: the connection is open, connected or reconnecting. Not `reachable`: a NATS outage
   * strikes every replica alike, and a pod taken out of its Service for it would also stop serving what
   * needs no NATS (the API's reads, the console, the CLI through it) while an operator looks into it.
   * Requests that need NATS fail meanwhile with TIMEOUT, saying NATS is unreachable. A closed connection is
   * never reopened.
   */
  isConnected(): boolean {
    return !this.nc.isClosed() && this.nc.info !== undefined;
  }

  /**
   * False from a disconnect until the reconnect that ends it (a NATS restart, a server gone). A publish
   * meanwhile only waits for its timeout, so work that can wait (an outbox's flush) skips, holding nothing,
   * and runs again on `onReconnect`. A silent partition is seen only once the client's pings fail.
   */
  get reachable(): boolean {
    return !this.disconnected && !this.nc.isClosed();
  }

  /** Calls `listener` after every reconnect, until the returned function is called. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => this.nc.close());
  }

  static newId(): string {
    return randomUUID();
  }
}

const headerSetter: TextMapSetter<MsgHdrs> = { set: (h, key, value) => h.set(key, value) };
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, key) => h?.get(key) || undefined,
  keys: (h) => h?.keys() ?? [],
};

/** NATS headers carrying the active trace context (W3C traceparent), or nothing when no span is recording. */
function traceHeaders(): { headers?: MsgHdrs } {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  if (Object.keys(carrier).length === 0) return {};
  const h = natsHeaders();
  for (const [k, v] of Object.entries(carrier)) headerSetter.set(h, k, v);
  return { headers: h };
}

/**
 * Every handler runs here: a message that carries a trace context (a sender that traces) is handled in a
 * server span continuing it; one without (heartbeats, an untraced sender) adds no span.
 */
function handleTraced(subscription: string, msg: Msg, onMessage: (msg: Msg) => Promise<void>): Promise<void> {
  if (!msg.headers?.get('traceparent')) return context.with(ROOT_CONTEXT, () => onMessage(msg));
  const parent = propagation.extract(ROOT_CONTEXT, msg.headers, headerGetter);
  return inSpan(`nats handle ${subscription}`, { kind: SpanKind.SERVER, parent, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject } }, () => onMessage(msg));
}

async function answer(
  contract: RequestContract,
  msg: Msg,
  handler: (request: never, subject: string) => Promise<unknown>,
): Promise<ReplyEnvelope> {
  const raw = safeJson(msg.data);
  if (raw === undefined) {
    return { ok: false, error: new FlexmigError(ErrorCode.MalformedMessage, `the message on ${msg.subject} is not JSON`).toBody() };
  }
  const parsed = contract.request.safeParse(raw);
  if (!parsed.success) return { ok: false, error: validationError(`request ${contract.subject}`, parsed.error).toBody() };
  try {
    const result = await handler(parsed.data as never, msg.subject);
    const reply = contract.reply.safeParse(result);
    if (!reply.success) {
      console.error(`[nats] handler of ${contract.subject} returned a reply outside its contract:`, reply.error.issues);
      return { ok: false, error: new FlexmigError(ErrorCode.Internal, `the reply of ${contract.subject} broke its contract`).toBody() };
    }
    return { ok: true, data: reply.data };
  } catch (e) {
    return { ok: false, error: toErrorBody(e) };
  }
}

export function toErrorBody(e: unknown): ErrorBody {
  if (isFlexmigError(e)) return e.toBody();
  const transient = transientFailure(e);
  if (transient) return transient.toBody();
  console.error('[flexmig] unexpected error:', e);
  return new FlexmigError(ErrorCode.Internal, `internal error: ${(e as Error)?.message ?? String(e)}`).toBody();
}

/**
 * The name inside a credentials file's user JWT (`inventory`, or a host id): the identity's inbox prefix
 * is `_INBOX.<name>` (libs/nats-auth's permissions let only that identity read it).
 */
export function credsUserName(creds: string): string {
  const jwt = /-----BEGIN NATS USER JWT-----\s*([^\s-][^\s]*)\s*------END NATS USER JWT------/.exec(creds)?.[1];
  if (!jwt) throw new Error('not a NATS credentials file (no user JWT)');
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as { name?: unknown };
  if (typeof claims.name !== 'string' || !/^[A-Za-z0-9_-]+$/.test(claims.name)) throw new Error('the credentials\' user JWT has no usable name');
  return claims.name;
}

/** Credentials (and the identity's inbox prefix) and TLS, from the options; nothing when neither is set. */
export function natsSecurityOptions(opts: Pick<NatsBusOptions, 'credsFile' | 'tlsCaFile'>): Partial<NodeConnectionOptions> {
  const out: Partial<NodeConnectionOptions> = {};
  if (opts.credsFile) {
    let creds: string;
    try {
      creds = readFileSync(opts.credsFile, 'utf8');
    } catch (e) {
      throw new FlexmigError(ErrorCode.Unavailable, `cannot read the NATS credentials file ${opts.credsFile} (NATS_CREDS): ${(e as Error).message}`);
    }
    out.authenticator = credsAuthenticator(new TextEncoder().encode(creds));
    out.inboxPrefix = `_INBOX.${credsUserName(creds)}`;
  }
  if (opts.tlsCaFile) out.tls = { caFile: opts.tlsCaFile };
  return out;
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
}

/**
 * Whether a request got no answer: nobody listens (the service or agent is down or restarting), no reply
 * came in time, or the connection failed on the way (`UNAVAILABLE`, `TIMEOUT`). Not a refusal: the receiver,
 * if it got the request, may still act or have acted (neverDelivered tells the one case where it did not).
 */
export function noReply(e: unknown): boolean {
  return e instanceof FlexmigError && (e.code === ErrorCode.Timeout || e.code === ErrorCode.Unavailable);
}

/**
 * Whether a request is known never to have reached anyone: NATS answered that no one listens on its subject
 * (`UNAVAILABLE` with `delivered: false`). Any other failure (no reply in time, a connection lost) leaves
 * open whether the receiver got it and acted.
 */
export function neverDelivered(e: unknown): boolean {
  return e instanceof FlexmigError && e.code === ErrorCode.Unavailable && e.details?.delivered === false;
}

/** `unreachable`: this process was reconnecting to NATS when the request failed (no URL: the message reaches API clients). */
function classifyRequestError(e: unknown, subject: string, timeoutMs: number, unreachable = false): FlexmigError {
  if (e instanceof errors.NoRespondersError || (e instanceof errors.RequestError && e.isNoResponders())) {
    return new FlexmigError(ErrorCode.Unavailable, `nobody answers ${subject}: is the service (or agent) behind it running?`, { subject, delivered: false });
  }
  if (e instanceof errors.TimeoutError) {
    // still TIMEOUT, not known undelivered: nats.js sends what it buffered once it reconnects
    const why = unreachable ? ': NATS is unreachable from this service, which is reconnecting (check the NATS server)' : '';
    return new FlexmigError(ErrorCode.Timeout, `no reply on ${subject} within ${timeoutMs} ms${why}`, { subject, timeoutMs });
  }
  return new FlexmigError(ErrorCode.Unavailable, `request on ${subject} failed: ${(e as Error)?.message ?? e}`, { subject });
}

function classifyJetStreamError(e: unknown): FlexmigError {
  return new FlexmigError(ErrorCode.Unavailable, `JetStream: ${(e as Error)?.message ?? e}. Is nats-server running with -js?`);
}

function isStreamNotFound(e: unknown): boolean {
  return e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound;
}
