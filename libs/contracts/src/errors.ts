import { z } from 'zod';

/**
 * The one error shape on the wire (HTTP bodies and NATS error replies alike).
 * Callers branch on `code`, never on `message` (STYLE.md 9).
 */
export const ErrorBodySchema = z.object({
  code: z.string().min(1),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  retryable: z.boolean().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Stable error codes, grouped by what the caller can do about them. */
export const ErrorCode = {
  // the request itself is wrong: fix it and retry
  ValidationFailed: 'VALIDATION_FAILED',
  MalformedMessage: 'MALFORMED_MESSAGE',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  // who asks: no valid bearer token, or a token whose roles do not allow the request
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  // something named does not exist
  NotFound: 'NOT_FOUND',
  // the request conflicts with the current state
  Conflict: 'CONFLICT',
  MigrationActive: 'MIGRATION_ACTIVE',
  UnableToMigrateToSelf: 'UNABLE_TO_MIGRATE_TO_SELF',
  HostDown: 'HOST_DOWN',
  HostInMaintenance: 'HOST_IN_MAINTENANCE',
  InsufficientCapacity: 'INSUFFICIENT_CAPACITY',
  VmNotRunning: 'VM_NOT_RUNNING',
  CpuIncompatible: 'CPU_INCOMPATIBLE',
  /** A resolution where the agents cannot tell where the VM runs: the operator must say (`runsOn`). */
  RunsOnRequired: 'RUNS_ON_REQUIRED',
  /** A resolution whose `runsOn` contradicts what the agents report. */
  RunsOnContradicted: 'RUNS_ON_CONTRADICTED',
  // defence in depth: a request that names a migration its receiver cannot tie to what it knows
  /** An agent was asked for a step or compensation of a migration whose earlier steps it did not take part in. */
  NotAParticipant: 'NOT_A_PARTICIPANT',
  /** A memory stream was to go elsewhere than the target host's registered migration address. */
  UntrustedAddress: 'UNTRUSTED_ADDRESS',
  /** A query would fence an attempt of a step that the scheduler never issued. */
  AttemptNotIssued: 'ATTEMPT_NOT_ISSUED',
  /** Inventory: another agent process owns this host id and still heartbeats (two agents with one HOST_ID). */
  HostOwnedByAnotherAgent: 'HOST_OWNED_BY_ANOTHER_AGENT',
  /** Inventory: a reservation or relocation that does not match the migration's reservation. */
  ReservationMismatch: 'RESERVATION_MISMATCH',
  // CPU model catalog and host evaluation
  UnknownCpuModel: 'UNKNOWN_CPU_MODEL',
  UnknownVendor: 'UNKNOWN_VENDOR',
  MalformedCpuinfo: 'MALFORMED_CPUINFO',
  MalformedCpuid: 'MALFORMED_CPUID',
  EmptyFeatureList: 'EMPTY_FEATURE_LIST',
  // the world failed: usually retryable
  Unavailable: 'UNAVAILABLE',
  Timeout: 'TIMEOUT',
  AgentFailed: 'AGENT_FAILED',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** HTTP status for each code; the edge (HTTP filter) maps with this table only. */
export const httpStatusOf: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  MALFORMED_MESSAGE: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  MIGRATION_ACTIVE: 409,
  UNABLE_TO_MIGRATE_TO_SELF: 422,
  HOST_DOWN: 409,
  HOST_IN_MAINTENANCE: 409,
  INSUFFICIENT_CAPACITY: 409,
  VM_NOT_RUNNING: 409,
  CPU_INCOMPATIBLE: 422,
  RUNS_ON_REQUIRED: 422,
  RUNS_ON_CONTRADICTED: 409,
  NOT_A_PARTICIPANT: 403,
  UNTRUSTED_ADDRESS: 403,
  ATTEMPT_NOT_ISSUED: 409,
  RESERVATION_MISMATCH: 409,
  HOST_OWNED_BY_ANOTHER_AGENT: 409,
  UNKNOWN_CPU_MODEL: 404,
  UNKNOWN_VENDOR: 422,
  MALFORMED_CPUINFO: 400,
  MALFORMED_CPUID: 400,
  EMPTY_FEATURE_LIST: 400,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  AGENT_FAILED: 502,
  INTERNAL: 500,
};

const retryableByDefault = new Set<ErrorCode>([ErrorCode.Unavailable, ErrorCode.Timeout]);

/**
 * A typed error with a stable code. Domain code throws these; the HTTP filter and the NATS transport
 * turn them into {@link ErrorBody} at the edge, and a client turns an error reply back into one.
 */
export class FlexmigError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    retryable?: boolean,
  ) {
    super(message);
    this.name = 'FlexmigError';
    this.retryable = retryable ?? retryableByDefault.has(code);
  }

  toBody(): ErrorBody {
    return {
      code: this.code,
      message: this.message,
      ...(this.details ? { details: this.details } : {}),
      retryable: this.retryable,
    };
  }

  static fromBody(body: ErrorBody): FlexmigError {
    const code = (Object.values(ErrorCode) as string[]).includes(body.code) ? (body.code as ErrorCode) : ErrorCode.Internal;
    return new FlexmigError(code, body.message, body.details, body.retryable);
  }
}

export const isFlexmigError = (e: unknown): e is FlexmigError => e instanceof FlexmigError;

/** At most this many issues, each path and message at most this long, in a VALIDATION_FAILED error. */
const MAX_ISSUES = 20;
const MAX_ISSUE_TEXT = 300;
const clip = (text: string) => (text.length > MAX_ISSUE_TEXT ? `${text.slice(0, MAX_ISSUE_TEXT)}… (${text.length} characters)` : text);

/**
 * Turns a zod failure into a VALIDATION_FAILED error that names the bad fields: the first 20, each path and
 * message clipped, and how many more there were. Its size is bounded whatever the input: a body of 100,000
 * unknown keys gets a short answer that fits a NATS reply, not a message that names every key.
 */
export function validationError(what: string, error: z.ZodError): FlexmigError {
  const issues = error.issues.slice(0, MAX_ISSUES).map((i) => ({ path: clip(i.path.join('.') || '(root)'), message: clip(i.message) }));
  const more = error.issues.length - issues.length;
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ') + (more > 0 ? `; and ${more} more issue(s)` : '');
  return new FlexmigError(ErrorCode.ValidationFailed, `${what} is invalid: ${summary}`, { issues, ...(more > 0 ? { moreIssues: more } : {}) });
}

/**
 * SQLSTATEs of PostgreSQL that mean "try again": the connection (class 08), the server shutting down or
 * restarting (57P01–57P03), too many connections (53300), and a transaction that lost a race
 * (serialization failure 40001, deadlock 40P01).
 */
const transientSqlStates = new Set(['57P01', '57P02', '57P03', '53300', '40001', '40P01']);
/** Node's socket errors of a peer that went away or is not there yet. */
const transientSocketCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
/** node-postgres says these in words only. */
const transientMessages = /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * An untyped error of a dependency that is down for a moment (PostgreSQL restarting, a connection
 * dropped) as a retryable UNAVAILABLE, or undefined when it is something else. The edges (HTTP filter,
 * NATS replies) use it so that a caller retries a transient outage instead of giving up on INTERNAL.
 */
export function transientFailure(e: unknown): FlexmigError | undefined {
  if (isFlexmigError(e) || e === null || typeof e !== 'object') return undefined;
  const err = e as { code?: unknown; message?: unknown; driverError?: unknown };
  const code = typeof err.code === 'string' ? err.code : undefined;
  const message = typeof err.message === 'string' ? err.message : '';
  const transient =
    (code !== undefined && (code.startsWith('08') || transientSqlStates.has(code) || transientSocketCodes.has(code))) || transientMessages.test(message);
  if (!transient) return err.driverError ? transientFailure(err.driverError) : undefined;
  return new FlexmigError(ErrorCode.Unavailable, `a dependency is unavailable for the moment (${code ? `${code}: ` : ''}${message || 'no message'}); retry`, code ? { cause: code } : undefined);
}

/**
 * What travels back on a NATS request's reply subject: the contract's reply as `data`, or the error body.
 * Plain JSON any language can produce (docs/asyncapi.yaml describes it per subject).
 */
export const replyEnvelopeOf = <T extends z.ZodType>(reply: T) =>
  z.union([z.object({ ok: z.literal(true), data: reply }), z.object({ ok: z.literal(false), error: ErrorBodySchema })]);
