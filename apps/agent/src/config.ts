import path from 'node:path';
import { z } from 'zod';
import { CommonEnvSchema, millis, port } from '@flexmig/service-kit';
import { DriverSchema, HostIdSchema, hostIdFromName, NameSchema, UuidSchema } from '@flexmig/contracts';
import { defaultStateBase } from './private-files';

export const AgentEnvSchema = CommonEnvSchema.extend({
  /** The host's id; a machine or node name with dots or capitals is mapped (`node-1.example.com` → `node-1-example-com`). */
  HOST_ID: z.string().min(1).max(253).transform(hostIdFromName).pipe(HostIdSchema),
  CLUSTER_ID: UuidSchema.optional(),
  /** Used when CLUSTER_ID is not set; the cluster is created if missing. */
  CLUSTER_NAME: NameSchema.default('default'),
  DRIVER: DriverSchema.default('sim'),
  /** /health and /metrics only: agents take commands over NATS. */
  PORT: port(3010),
  HEARTBEAT_INTERVAL_MS: millis(2_000),
  /** Every Nth heartbeat carries the full VM list even when its digest did not change (default 10). */
  AGENT_VM_REPORT_EVERY_BEATS: z.coerce.number().int().min(1).max(1_000).default(10),
  /** host:port other agents reach this host on for migration traffic. */
  MIGRATION_ADDRESS: z.string().default('127.0.0.1:49152'),
  /**
   * Where the agent keeps what must survive its own restart, one set of files per host, 0600 in a 0700
   * directory: <dir>/<HOST_ID>.ledger/ (the step ledger, a file per migration) and <dir>/<HOST_ID>.json (the
   * sim driver's VM records). Default: /var/lib/flexmig/agent as root, else $XDG_STATE_HOME/flexmig/agent
   * (~/.local/state/flexmig/agent). Keep it across restarts (a hostPath on Kubernetes).
   */
  AGENT_STATE_DIR: z.string().min(1).optional(),
  /**
   * On Kubernetes: the identity issuer (apps/kube) that signs this host's NATS identity at start, instead of a
   * creds file (NATS_CREDS). The agent proves its pod with IDENTITY_TOKEN_FILE; its own user key never leaves it.
   */
  IDENTITY_ISSUER_URL: z.url().optional(),
  /** The pod's projected ServiceAccount token for the issuer's audience (default: where the chart projects it, defaultIdentityTokenFile). */
  IDENTITY_TOKEN_FILE: z.string().min(1).optional(),
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
  /** Extra time every simulated step takes (a hypervisor's own latency), in real ms; 0 by default. */
  SIM_STEP_LATENCY_MS: z.coerce.number().int().min(0).default(0),
  /**
   * `steps` (default): the sim pauses in step 5 and resumes in step 7, each on its own command (the fault
   * matrix's rows at those steps land there). `qemu`: as the qemu driver, step 5 is done inside step 4 and
   * step 7 inside step 6 (docs/switchover.md), so that the saga's one-command switchover runs without QEMU.
   */
  SIM_SWITCHOVER: z.enum(['steps', 'qemu']).default('steps'),
  // ---- qemu driver ----
  // Optional in the type (defaults applied by createDriver: QEMU_DEFAULTS) so that code building an
  // AgentEnv by hand for the sim driver (the fleet) need not know them.
  /** Default qemu-system-x86_64. */
  QEMU_BINARY: z.string().min(1).optional(),
  /** kvm | tcg | auto (default; per VM: KVM when /dev/kvm opens and the baseline's model lacks nothing there, else TCG). */
  QEMU_ACCEL: z.enum(['kvm', 'tcg', 'auto']).optional(),
  /**
   * VM state files, QMP sockets, logs, serial output, guest images; made 0700. Default: /var/lib/flexmig/qemu-<HOST_ID>
   * as root, else $XDG_STATE_HOME/flexmig/qemu-<HOST_ID>. QMP socket paths must stay under 108 bytes: keep it short.
   */
  QEMU_RUN_DIR: z.string().min(1).optional(),
  /**
   * Fixed ports for incoming migration streams, "LOW-HIGH", the same on every host (for firewalls): the
   * port then derives from the migration id. Unset (default): the kernel picks a free port and the target
   * reports it in its step-2 reply, which the scheduler hands to the source.
   */
  QEMU_MIGRATION_PORT_RANGE: z
    .string()
    .regex(/^\d+-\d+$/, 'expected LOW-HIGH')
    .transform((s) => s.split('-').map(Number) as [number, number])
    .refine(([lo, hi]) => lo >= 1 && hi <= 65535 && lo <= hi, 'expected 1 ≤ LOW ≤ HIGH ≤ 65535')
    .optional(),
  /**
   * Migrate over TLS: QEMU's tls-creds-x509 directory of this host (ca-cert.pem: the CA it trusts;
   * server-cert.pem/server-key.pem as a target; client-cert.pem/client-key.pem as a source). Both ends
   * verify the peer. Unset: plain TCP (a warning at start). Set it on every host or on none.
   */
  QEMU_TLS_DIR: z.string().min(1).optional(),
  /** Address the target QEMU listens on; default: the host part of MIGRATION_ADDRESS. */
  QEMU_MIGRATION_LISTEN_HOST: z.string().min(1).optional(),
  /**
   * The guest workload of VMs that do not say otherwise (inventory's VMs do not): MiB/s it writes and the
   * MiB it writes them over (default: none, an idle guest that writes 1 MiB at ~1 MiB/s). Set the same on every host.
   */
  QEMU_GUEST_DIRTY_RATE_MIBPS: z.coerce.number().min(0).optional(),
  /**
   * vCPUs this host offers to VMs, which inventory admits against (default: its CPU count). Set it higher
   * to overcommit (a small test machine running many TCG guests of one vCPU each).
   */
  QEMU_HOST_VCPUS: z.coerce.number().int().min(1).optional(),
  QEMU_GUEST_WORKING_SET_MIB: z.coerce.number().min(1).optional(),
  /** How often every running VM's dirty rate is sampled with calc-dirty-rate (docs/prediction.md); 0: on demand only. Default 300000 (5 min). */
  QEMU_DIRTY_RATE_INTERVAL_MS: z.coerce.number().int().min(0).max(86_400_000).optional(),
  /**
   * Whether a target QEMU touches all of the incoming guest's memory in step 2, before the stream
   * (`-mem-prealloc`; docs/switchover.md): auto (default) when the host's MemAvailable and the agent's cgroup
   * memory limit leave the guest's memory and 1 GiB more, on, off. Touched ahead, the first pass's zero pages cost the target nothing during the
   * switchover; left to fault in, they can hold an idle guest's downtime past the policy's limit.
   */
  QEMU_PREALLOC_INCOMING: z.enum(['auto', 'on', 'off']).optional(),
  /** MiB of random RAM the link probe's QEMU migrates into the target's link sink (docs/prediction.md). Default 64. */
  QEMU_LINK_PROBE_MIB: z.coerce.number().int().min(8).max(1024).optional(),
});
export type AgentEnv = z.infer<typeof AgentEnvSchema>;
/** Where the chart's serviceAccountToken volume puts the agent's token for the identity issuer. */
export const defaultIdentityTokenFile = '/var/run/secrets/flexmig/identity/token';
export const QEMU_DEFAULTS = { binary: 'qemu-system-x86_64', accel: 'auto' } as const;
export const AGENT_ENV = Symbol('AGENT_ENV');

/** The agent's state directory: AGENT_STATE_DIR, or the default under the state base (never /tmp). */
export const agentStateDir = (env: Pick<AgentEnv, 'AGENT_STATE_DIR'>): string => env.AGENT_STATE_DIR ?? path.join(defaultStateBase(), 'agent');
/** The qemu driver's run directory: QEMU_RUN_DIR, or the default under the state base (never /tmp). */
export const qemuRunDir = (env: Pick<AgentEnv, 'QEMU_RUN_DIR' | 'HOST_ID'>): string => env.QEMU_RUN_DIR ?? path.join(defaultStateBase(), `qemu-${env.HOST_ID}`);
