import { hostname } from 'node:os';
import { z } from 'zod';
import { CommonEnvSchema, DatabaseEnvSchema, millis, port } from '@flexmig/service-kit';

export const SchedulerEnvSchema = CommonEnvSchema.extend(DatabaseEnvSchema.shape).extend({
  PORT: port(3002),
  /** This replica's name in leases; unique per process. */
  SCHEDULER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** A migration whose driving replica has not renewed its lease for this long is taken over by another. */
  LEASE_TTL_MS: millis(10_000),
  /** How often a replica renews its leases, claims orphaned migrations and flushes the event outbox. */
  RECONCILE_INTERVAL_MS: millis(1_000),
});
export type SchedulerEnv = z.infer<typeof SchedulerEnvSchema>;

export interface SchedulerConfig {
  schedulerId: string;
  leaseTtlMs: number;
  reconcileIntervalMs: number;
}
export const SCHEDULER_CONFIG = Symbol('SCHEDULER_CONFIG');
