import { hostname } from 'node:os';
import { z } from 'zod';
import { CommonEnvSchema, DatabaseEnvSchema, HttpEnvSchema, millis, port } from '@flexmig/service-kit';

export const SchedulerEnvSchema = CommonEnvSchema.extend(DatabaseEnvSchema.shape).extend(HttpEnvSchema.shape).extend({
  PORT: port(3002),
  /** This replica's name in leases; unique per process. */
  SCHEDULER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** A migration whose driving replica has not renewed its lease for this long is taken over by another. */
  LEASE_TTL_MS: millis(10_000),
  /** How often a replica renews its leases, claims orphaned migrations, re-drives the migrations whose next action is due and flushes the event outbox. */
  RECONCILE_INTERVAL_MS: millis(1_000),
  /**
   * Admission limits, the defaults for clusters that set none (PUT /api/v1/clusters/:id/migration-settings).
   * A migration beyond a limit waits in the queue. KubeVirt's defaults: 2 outbound per node, 5 per
   * cluster, no inbound limit (0 = unlimited).
   */
  MAX_OUTBOUND_PER_HOST: z.coerce.number().int().min(0).default(2),
  MAX_INBOUND_PER_HOST: z.coerce.number().int().min(0).default(0),
  MAX_PER_CLUSTER: z.coerce.number().int().min(0).default(5),
  /**
   * Slow motion: wait this long before sending each step command (default 0). For demonstrations and for
   * fault-injection tests that must catch a migration inside a given step. Never in production: between
   * steps 5 and 7 every millisecond is guest downtime.
   */
  STEP_DELAY_MS: z.coerce.number().int().min(0).default(0),
  /**
   * Caps every step's per-attempt timeout (ms; 0 = the saga's own, up to 30 min for a memory copy).
   * When an attempt times out the agent is asked what it did; a copy still running answers "in progress"
   * and is polled, so the cap only makes a lost reply or a dead agent noticed sooner.
   */
  STEP_TIMEOUT_MS: z.coerce.number().int().min(0).default(60_000),
  /**
   * Predictions (docs/prediction.md): the link bandwidth assumed between two hosts that no migration has
   * measured and whose source agent cannot probe (MiB/s; the answer says `assumed`), and the oldest
   * dirty-rate sample of a VM's agent that is used as is (ms; older: the agent samples again).
   */
  PREDICTION_ASSUMED_BANDWIDTH_MIBPS: z.coerce.number().int().min(1).max(1_000_000).default(1250),
  PREDICTION_DIRTY_RATE_MAX_AGE_MS: z.coerce.number().int().min(0).max(86_400_000).default(600_000),
  /**
   * How long `POST /api/v1/migrations` waits for its prediction (ms). Known inputs answer in milliseconds; a
   * first dirty-rate sample or link probe takes seconds, and the migration does not wait for it (it records
   * why it has no prediction; the measuring goes on and is kept).
   */
  PREDICTION_WAIT_MS: z.coerce.number().int().min(0).max(120_000).default(250),
  /**
   * How long a step's outcome may stay unknown because its agent cannot be asked (ms, default 15 min:
   * long enough for a host to reboot). Past it the migration ends `failed-needs-attention` and frees its
   * slots; steps 8–9 likewise stop after 10 attempts or at a permanent error.
   */
  OUTCOME_UNKNOWN_LIMIT_MS: millis(900_000),
});
export type SchedulerEnv = z.infer<typeof SchedulerEnvSchema>;

export interface MigrationLimits {
  /** 0 = unlimited */
  maxOutboundPerHost: number;
  maxInboundPerHost: number;
  maxPerCluster: number;
}

export interface SchedulerConfig {
  schedulerId: string;
  leaseTtlMs: number;
  reconcileIntervalMs: number;
  limits: MigrationLimits;
  stepDelayMs?: number;
  /** Cap of each step's per-attempt timeout; undefined or 0 = the saga's defaults. */
  stepTimeoutMs?: number;
  /** The saga's outcomeUnknownLimitMs; undefined = its default. */
  outcomeUnknownLimitMs?: number;
  /** PREDICTION_* settings; undefined = their defaults (prediction/prediction.service.ts). */
  prediction?: { assumedBandwidthMiBps: number; dirtyRateMaxAgeMs: number; waitMs: number };
}
export const SCHEDULER_CONFIG = Symbol('SCHEDULER_CONFIG');
