import { z } from 'zod';
import { defineRequest } from './define';
import { HostIdSchema, IsoTimeSchema, UuidSchema } from './common';
import { MigrationPolicyInputSchema, MigrationPolicySchema } from './policy';

/**
 * A migration's time and downtime before it starts (issue 12, part 2; docs/prediction.md): the scheduler
 * asks the VM's agent for its dirty rate and working set, takes the bandwidth between the two hosts from
 * their last migrations (else a probe), and runs `@flexmig/migration-model`'s `predict`.
 */

const bytes = () => z.number().finite().min(0);
const ms = () => z.number().finite().min(0);

/** What the model predicts for one migration under one policy. */
export const PredictedFiguresSchema = z.object({
  totalTimeMs: ms(),
  /** The guest's pause; 0 when it would not complete. */
  downtimeMs: ms(),
  passes: z.number().int().min(0),
  bytesTransferred: bytes(),
  /** The VM would end up running on the target (pre-copy converged, or post-copy finished it). */
  converges: z.boolean(),
  outcome: z.enum(['converged', 'postcopy', 'not-converging', 'max-passes', 'aborted']),
  switchover: z.enum(['precopy', 'postcopy', 'none']),
  /** The highest auto-converge throttle the policy would apply (0: none). */
  throttlePct: z.number().min(0).max(100),
  /** Why it would not complete (the policy's abort), when it would not. */
  reason: z.string().max(1000).optional(),
});
export type PredictedFigures = z.infer<typeof PredictedFiguresSchema>;

/** A change of policy that would make a migration that does not converge converge, and its price. */
export const PredictionLeverSchema = z.object({
  lever: z.enum(['auto-converge', 'downtime-limit', 'post-copy']),
  /** The policy fields to set (in `policy` of POST /api/v1/migrations). */
  policy: MigrationPolicyInputSchema,
  predicted: PredictedFiguresSchema,
  cost: z.string().max(1000),
});

/**
 * Where an input came from: `calc-dirty-rate` (QEMU's own sampling of the guest), `model` (the sim
 * driver's guest model), `migrations` (the last migrations between the two hosts), `probe` (a short
 * transfer between the hosts), `assumed` (a configured default, when nothing could be measured), `vm` (the
 * VM's record in inventory).
 */
export const PredictionInputOriginSchema = z.enum(['calc-dirty-rate', 'model', 'migrations', 'probe', 'assumed', 'vm']);

export const PredictionInputSchema = z.object({
  value: z.number().finite().min(0),
  unit: z.enum(['bytes', 'bytes/s', 'ms']),
  origin: PredictionInputOriginSchema,
  /** When it was measured; null for a record or a default. */
  measuredAt: IsoTimeSchema.nullable(),
  /** Its age when the prediction was made (ms); null with `measuredAt`. */
  ageMs: z.number().int().min(0).nullable(),
  detail: z.string().max(500),
});
export type PredictionInput = z.infer<typeof PredictionInputSchema>;

export const MigrationPredictionSchema = z.object({
  vmId: UuidSchema,
  sourceHostId: HostIdSchema,
  targetHostId: HostIdSchema,
  /** When the scheduler chose the target: why (null when the caller named it). */
  placement: z.object({ chosen: HostIdSchema, reason: z.string() }).nullable(),
  /** The policy the prediction is for: the caller's fields over the cluster's and the defaults. */
  policy: MigrationPolicySchema,
  predicted: PredictedFiguresSchema,
  /** When it would not converge: each lever that would make it converge, with its cost. */
  levers: z.array(PredictionLeverSchema).max(3),
  inputs: z.object({
    memoryBytes: PredictionInputSchema,
    dirtyRateBytesPerSec: PredictionInputSchema,
    workingSetBytes: PredictionInputSchema,
    /** The memory that holds data, what the first pass sends (absent when the agent cannot tell: the model then sends all memory). */
    residentBytes: PredictionInputSchema.optional(),
    bandwidthBytesPerSec: PredictionInputSchema,
    /** The control plane's time outside pre-copy and the pause, from the hosts' last migration (absent without one). */
    setupMs: PredictionInputSchema.optional(),
    /** The pause's cost besides copying memory, from the hosts' last migration (absent without one: the model's default). */
    switchoverFixedMs: PredictionInputSchema.optional(),
  }),
  predictedAt: IsoTimeSchema,
});
export type MigrationPrediction = z.infer<typeof MigrationPredictionSchema>;

// ---- NATS: scheduler → agent ----

/** A VM's dirty rate and working set as its agent measured them. */
export const DirtyRateSampleSchema = z.object({
  vmId: UuidSchema,
  hostId: HostIdSchema,
  dirtyRateBytesPerSec: bytes(),
  /** Where the guest's writes fall: the distinct bytes dirtied over the longer sampling window. */
  workingSetBytes: bytes(),
  memoryBytes: bytes(),
  /**
   * The memory that holds data (qemu: the resident part of the guest's RAM in QEMU's process): pages never
   * written travel as a zero-page flag, so a first pass sends about this much. Absent when unknown (sim).
   */
  residentBytes: bytes().optional(),
  /** `calc-dirty-rate`: QEMU sampled the guest's pages (qemu driver); `model`: the sim driver's guest model. */
  origin: z.enum(['calc-dirty-rate', 'model']),
  measuredAt: IsoTimeSchema,
  detail: z.string().max(500),
});
export type DirtyRateSample = z.infer<typeof DirtyRateSampleSchema>;

export const SampleDirtyRate = defineRequest({
  subject: 'agent.{hostId}.vm.dirty-rate',
  description:
    "A running VM's dirty rate and working set. The qemu driver samples them with QMP calc-dirty-rate on a schedule and answers the latest sample, " +
    'or a new one (a few seconds) with `fresh` or when the latest is older than `maxAgeMs`; the sim driver answers from its model.',
  request: z.object({ vmId: UuidSchema, fresh: z.boolean().optional(), maxAgeMs: z.number().int().min(0).max(86_400_000).optional() }).strict(),
  reply: DirtyRateSampleSchema,
});

/** The most a link sink reads before it closes (the largest probe, QEMU_LINK_PROBE_MIB ≤ 1024, and QEMU's stream overhead fit). */
export const LINK_SINK_MAX_BYTES = 2 * 1024 ** 3;

export const OpenLinkSink = defineRequest({
  subject: 'agent.{hostId}.link.sink',
  description:
    "Opens a one-shot TCP sink on this host's migration listen host (in QEMU_MIGRATION_PORT_RANGE when one is set) for a link probe from `sourceHostId`: " +
    'it accepts ONE connection until `expiresAt` (~10 s), reads and discards at most `maxBytes`, then closes. ' +
    'The qemu driver answers its address; drivers that need no sink (sim: its probe answers its model link) answer `address: null`.',
  request: z.object({ sourceHostId: HostIdSchema, maxBytes: z.number().int().min(1024 * 1024).max(LINK_SINK_MAX_BYTES).optional() }).strict(),
  reply: z.object({
    /** `host:port` the probe streams to; null: this host's driver needs no sink (probe towards its migration address). */
    address: z.string().min(1).max(300).nullable(),
    expiresAt: IsoTimeSchema.nullable(),
    detail: z.string().max(500),
  }),
});

export const ProbeLink = defineRequest({
  subject: 'agent.{hostId}.link.probe',
  description:
    "The bandwidth of this host's migration link towards another host, when no migration between them has measured it: " +
    "the qemu driver migrates a short-lived probe QEMU (QEMU_LINK_PROBE_MIB of random RAM, no guest) to `targetAddress`, the target's link sink (agent.{hostId}.link.sink), " +
    "and answers QEMU's own figures; the sim driver answers its model link; drivers that cannot probe answer VALIDATION_FAILED.",
  request: z.object({ targetHostId: HostIdSchema, targetAddress: z.string().min(1).max(300) }).strict(),
  reply: z.object({ bandwidthBytesPerSec: z.number().finite().positive(), origin: z.enum(['model', 'probe']), measuredAt: IsoTimeSchema, detail: z.string().max(500) }),
});
