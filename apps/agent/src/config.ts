import { z } from 'zod';
import { CommonEnvSchema, millis, port } from '@flexmig/service-kit';
import { DriverSchema, HostIdSchema, NameSchema, UuidSchema } from '@flexmig/contracts';

export const AgentEnvSchema = CommonEnvSchema.extend({
  HOST_ID: HostIdSchema,
  CLUSTER_ID: UuidSchema.optional(),
  /** Used when CLUSTER_ID is not set; the cluster is created if missing. */
  CLUSTER_NAME: NameSchema.default('default'),
  DRIVER: DriverSchema.default('sim'),
  /** /health and /metrics only: agents take commands over NATS. */
  PORT: port(3010),
  HEARTBEAT_INTERVAL_MS: millis(2_000),
  /** host:port other agents reach this host on for migration traffic. */
  MIGRATION_ADDRESS: z.string().default('127.0.0.1:49152'),
  // ---- sim driver ----
  /** The CPU generation the simulated host has: a baseline name of the catalog. */
  SIM_CPU: z.string().default('IvyBridge'),
  SIM_MEMORY_MIB: z.coerce.number().int().min(256).default(65_536),
  SIM_VCPUS: z.coerce.number().int().min(1).default(32),
  /** Migration link speed of the simulated host (1250 MiB/s ≈ 10 GbE). */
  SIM_BANDWIDTH_MIBPS: z.coerce.number().positive().default(1_250),
  /** Real seconds per simulated second: 0.1 runs ten times faster than life, 0 makes transfers instant. */
  SIM_TIME_SCALE: z.coerce.number().min(0).default(1),
  /** Guest behaviour of simulated VMs that do not say otherwise. */
  SIM_DIRTY_RATE_MIBPS: z.coerce.number().min(0).default(200),
  SIM_WORKING_SET_MIB: z.coerce.number().min(0).default(256),
});
export type AgentEnv = z.infer<typeof AgentEnvSchema>;
export const AGENT_ENV = Symbol('AGENT_ENV');
