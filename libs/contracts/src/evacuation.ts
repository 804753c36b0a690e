import { z } from 'zod';
import { PageQuerySchema } from './lists';
import { defineRequest } from './define';
import { HostIdSchema, IsoTimeSchema, NameSchema, UuidSchema } from './common';
import { HostSchema, VmSchema } from './inventory';
import { MigrationStateSchema } from './scheduler';

// Host maintenance and evacuation (issue 4, item 8): an operator puts a host into maintenance (it takes no
// new VMs) and the scheduler live-migrates every VM on it away, within the migration limits.

// ---- inventory: host maintenance ----

/** HTTP body of `PUT /api/v1/hosts/:id/maintenance`. */
export const SetMaintenanceSchema = z.object({ maintenance: z.boolean() }).strict();
export type SetMaintenance = z.infer<typeof SetMaintenanceSchema>;

export const SetHostMaintenance = defineRequest({
  subject: 'inventory.host.set-maintenance',
  description:
    'Puts a host into maintenance (it takes no new VMs nor incoming migrations) or takes it out. Idempotent; VMs already on it keep running.',
  request: z.object({ hostId: HostIdSchema, maintenance: z.boolean() }),
  reply: z.object({ host: HostSchema }),
});

export const ListVms = defineRequest({
  subject: 'inventory.vm.list',
  description: 'A page of the VMs of a host and/or a cluster (all when neither is given), oldest first (limit, cursor; nextCursor null on the last page).',
  request: z.object({ hostId: HostIdSchema.optional(), clusterId: UuidSchema.optional(), ...PageQuerySchema.shape }),
  reply: z.object({ vms: z.array(VmSchema), nextCursor: z.string().nullable() }),
});

// ---- scheduler: evacuations ----

/** HTTP body of `POST /api/v1/evacuations`. */
export const CreateEvacuationSchema = z.object({ hostId: HostIdSchema }).strict();
export type CreateEvacuation = z.infer<typeof CreateEvacuationSchema>;

/**
 * `running` while a VM's migration has not ended; then `completed` when every VM moved, or
 * `completed-with-failures` when at least one could not move or its migration did not complete.
 */
export const EvacuationStateSchema = z.enum(['running', 'completed', 'completed-with-failures']);
export type EvacuationState = z.infer<typeof EvacuationStateSchema>;

/** How many migrations an evacuation asks for one VM at most: the first, and one more each time step 1 refuses the target placement chose. */
export const EVACUATION_PLACEMENTS = 3;

/**
 * One VM of the evacuated host. `outcome`: `moving` (its migration is queued or runs, or step 1
 * refused its target and it is being placed again: see `reason`), `moved` (migration
 * completed), `failed` (its migration ended without completing; see `reason`), `not-moved` (no migration
 * could be started for it; see `reason`).
 */
export const EvacuationItemOutcomeSchema = z.enum(['moving', 'moved', 'failed', 'not-moved']);
export const EvacuationItemSchema = z.object({
  vmId: UuidSchema,
  name: NameSchema,
  migrationId: UuidSchema.nullable(),
  migrationState: MigrationStateSchema.nullable(),
  targetHostId: HostIdSchema.nullable(),
  outcome: EvacuationItemOutcomeSchema,
  /** Why the VM could not move (no migration), why its migration failed, or why step 1 refused the target it is being placed again from. */
  reason: z.string().nullable(),
  /** The error code behind `reason`, for callers to branch on. */
  code: z.string().nullable(),
  /**
   * The migrations asked for this VM before `migrationId`, oldest first. Each was refused at step 1 because
   * its target could no longer take the VM (it went into maintenance or down, ran out of room, or its CPU
   * changed since placement chose it), and placement chose again, up to EVACUATION_PLACEMENTS migrations in all.
   */
  earlierMigrationIds: z.array(UuidSchema).max(EVACUATION_PLACEMENTS - 1),
});
export type EvacuationItem = z.infer<typeof EvacuationItemSchema>;

export const EvacuationViewSchema = z.object({
  id: UuidSchema,
  hostId: HostIdSchema,
  state: EvacuationStateSchema,
  /** Who asked for it: the `sub` of the bearer token (null for evacuations from before tokens were required). */
  requestedBy: z.string().nullable(),
  counts: z.object({
    total: z.number().int().min(0),
    moving: z.number().int().min(0),
    moved: z.number().int().min(0),
    failed: z.number().int().min(0),
    notMoved: z.number().int().min(0),
  }),
  vms: z.array(EvacuationItemSchema),
  createdAt: IsoTimeSchema,
  updatedAt: IsoTimeSchema,
  finishedAt: IsoTimeSchema.nullable(),
});
export type EvacuationView = z.infer<typeof EvacuationViewSchema>;
