import { z } from 'zod';
import { millis, port } from '@flexmig/service-kit';

export const DrainWatcherEnvSchema = z.object({
  /** /health/live and /health/ready (ready once the first list of nodes has been read). */
  PORT: port(3021),
  LISTEN_HOST: z.string().min(1).default('0.0.0.0'),
  /** The scheduler's base URL (POST/GET /api/v1/evacuations) and inventory's (PUT /api/v1/hosts/:id/maintenance). */
  SCHEDULER_URL: z.url(),
  INVENTORY_URL: z.url(),
  /** A bearer token with the operator role (the least that evacuates and ends maintenance), as a file. */
  FLEXMIG_TOKEN_FILE: z.string().min(1),
  /** Only the nodes this label selector matches (e.g. the hypervisor nodes); empty: every node. */
  NODE_SELECTOR: z.string().max(1024).default(''),
  /** A node label whose value is the node's host id (when its agent runs with another HOST_ID); else the node's name is mapped. */
  HOST_ID_LABEL: z.string().max(317).default('flexmig.io/host-id'),
  /** How often a running evacuation's progress is read into the node's condition. */
  FOLLOW_INTERVAL_MS: millis(5_000),
});
export type DrainWatcherEnv = z.infer<typeof DrainWatcherEnvSchema>;
