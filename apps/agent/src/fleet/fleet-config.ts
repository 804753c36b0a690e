import { z } from 'zod';
import { AgentEnvSchema } from '../config';
import { defaultRegistrationsInFlight, SimFleetOptions } from './sim-fleet';

/**
 * The fleet's environment: the agent's (NATS_URL, SUBJECT_PREFIX, CLUSTER_ID / CLUSTER_NAME,
 * HEARTBEAT_INTERVAL_MS, SIM_*), without HOST_ID, DRIVER, PORT and MIGRATION_ADDRESS (each host gets
 * its own id and address; the driver is always sim), plus the FLEET_* variables.
 */
export const FleetEnvSchema = AgentEnvSchema.omit({ HOST_ID: true, DRIVER: true, PORT: true, MIGRATION_ADDRESS: true }).extend({
  /** How many simulated hosts this process runs. */
  FLEET_SIZE: z.coerce.number().int().min(1).max(10_000).default(10),
  /** Host ids are `<FLEET_HOST_PREFIX>-001`, `-002`, … */
  FLEET_HOST_PREFIX: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,50}$/, 'lowercase letters, digits or dashes, starting with a letter or digit (room is left for -NNN)')
    .default('sim'),
  /** CPU generations (catalog baseline names), comma-separated, given to the hosts round-robin. Default: SIM_CPU. */
  FLEET_CPUS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((c) => c.trim()).filter(Boolean)),
  /** Register with inventory (in the background, retried until it answers). */
  FLEET_REGISTER: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** At most this many of the hosts' registrations in flight at once (the rest wait their turn). */
  FLEET_REGISTRATIONS_IN_FLIGHT: z.coerce.number().int().min(1).max(10_000).default(defaultRegistrationsInFlight),
});
export type FleetEnv = z.infer<typeof FleetEnvSchema>;

export function fleetOptionsFromEnv(env: FleetEnv): SimFleetOptions {
  return {
    natsUrl: env.NATS_URL,
    subjectPrefix: env.SUBJECT_PREFIX,
    ...(env.NATS_CREDS ? { credsFile: env.NATS_CREDS } : {}),
    ...(env.NATS_TLS_CA ? { tlsCaFile: env.NATS_TLS_CA } : {}),
    size: env.FLEET_SIZE,
    hostPrefix: env.FLEET_HOST_PREFIX,
    cpus: env.FLEET_CPUS.length > 0 ? env.FLEET_CPUS : [env.SIM_CPU],
    ...(env.CLUSTER_ID ? { clusterId: env.CLUSTER_ID } : {}),
    clusterName: env.CLUSTER_NAME,
    heartbeatIntervalMs: env.HEARTBEAT_INTERVAL_MS,
    sim: {
      memoryMiB: env.SIM_MEMORY_MIB,
      vcpus: env.SIM_VCPUS,
      bandwidthMiBps: env.SIM_BANDWIDTH_MIBPS,
      timeScale: env.SIM_TIME_SCALE,
      dirtyRateMiBps: env.SIM_DIRTY_RATE_MIBPS,
      workingSetMiB: env.SIM_WORKING_SET_MIB,
      switchover: env.SIM_SWITCHOVER,
    },
    register: env.FLEET_REGISTER,
    registrationsInFlight: env.FLEET_REGISTRATIONS_IN_FLIGHT,
    logLevel: env.LOG_LEVEL,
  };
}
