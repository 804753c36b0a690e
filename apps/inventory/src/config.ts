import { z } from 'zod';
import { CommonEnvSchema, DatabaseEnvSchema, HttpEnvSchema, millis, port } from '@flexmig/service-kit';
import type { MassSilenceRule } from './hosts/hearing';

/** The queue group of inventory's replicas: each message reaches one of them (startService's `queue`, HeartbeatListener). */
export const INVENTORY_QUEUE = 'inventory';

export const InventoryEnvSchema = CommonEnvSchema.extend(DatabaseEnvSchema.shape).extend(HttpEnvSchema.shape).extend({
  PORT: port(3001),
  /** PostgreSQL connections per inventory process. No request holds one across a NATS request (docs/reconciliation.md, "No pool starvation"). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
  /** A host whose agent has been silent this long is marked down (3 missed heartbeats at the default 2 s). */
  HOST_DOWN_AFTER_MS: millis(6_000),
  HOST_CHECK_INTERVAL_MS: millis(1_000),
  /**
   * When this share of the up hosts (and at least HOST_MASS_SILENCE_MIN of them) fell silent at once, the
   * liveness sweep takes it for inventory's own deafness (cut from NATS) and marks none of them down
   * (docs/reconciliation.md, "Many hosts silent at once"). HOST_MASS_SILENCE_MIN=0 turns that off.
   */
  HOST_MASS_SILENCE_SHARE: z.coerce.number().gt(0).max(1).default(0.55),
  HOST_MASS_SILENCE_MIN: z.coerce.number().int().min(0).default(3),
  /** Heartbeats that change nothing are written together, one statement per this interval (docs/scale.md). */
  HEARTBEAT_FLUSH_MS: millis(500),
  /** How long POST /vms waits for the agent to start the VM. */
  VM_START_TIMEOUT_MS: millis(30_000),
  /** How often inventory compares its records with what the agents report (orphaned, missing, split-brain VMs). */
  RECONCILE_INTERVAL_MS: millis(10_000),
});
export type InventoryEnv = z.infer<typeof InventoryEnvSchema>;

export interface InventoryConfig {
  hostDownAfterMs: number;
  hostCheckIntervalMs: number;
  /** When many hosts silent at once are not marked down (HOST_MASS_SILENCE_SHARE, HOST_MASS_SILENCE_MIN). */
  massSilence: MassSilenceRule;
  heartbeatFlushMs: number;
  vmStartTimeoutMs: number;
  reconcileIntervalMs: number;
}
export const INVENTORY_CONFIG = Symbol('INVENTORY_CONFIG');
