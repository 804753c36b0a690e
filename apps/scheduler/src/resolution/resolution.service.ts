import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import {
  ErrorCode,
  FenceMigration,
  FlexmigError,
  GetVm,
  isFlexmigError,
  ListAgentVms,
  MigrationResolution,
  MigrationResolved,
  ReleaseCapacity,
  RelocateVm,
  ResolveMigration,
  Vm,
} from '@flexmig/contracts';
import type { EventDataOf } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { isUniqueViolation } from '@flexmig/persistence';
import { MigrationEntity, OutboxEntity } from '../entities';
import { DbClock } from '../db-clock';
import { type AgentAnswer, decideResolution, type ResolutionPlan, type Side } from './resolution-decision';
import { MigrationResolutionEntity, resolutionView } from './resolution.entity';

/**
 * Each agent is asked where the VM runs, and told to fence or keep its copy, within this: a resolution is
 * an operator waiting on an HTTP request, and an agent that is up answers in milliseconds.
 */
export const agentDeadlineMs = 3_000;
/** Inventory's requests (relocate, release, get). */
const inventoryDeadlineMs = 5_000;

type Fence = MigrationResolution['fence'];
type Kept = MigrationResolution['kept'];

// Pre-checks: small named functions, each raising one specific error (STYLE.md 7).
function checkNeedsAttention(row: MigrationEntity): void {
  if (row.state !== 'failed-needs-attention') {
    throw new FlexmigError(ErrorCode.Conflict, `migration ${row.id} is ${row.state}: only a migration in failed-needs-attention can be resolved`, { migrationId: row.id, state: row.state });
  }
}
function checkNotResolved(id: string, done: MigrationResolutionEntity | null): void {
  if (done) {
    throw new FlexmigError(
      ErrorCode.Conflict,
      `migration ${id} was already resolved by ${done.resolvedBy} at ${done.resolvedAt.toISOString()}: the VM runs on the ${done.runsOn} host ${done.hostId}`,
      { migrationId: id, resolution: resolutionView(done) },
    );
  }
}
/** Inventory can record the VM on the chosen host: a relocation is only undone by a new migration. */
function checkInventoryCanAgree(row: MigrationEntity, vm: Vm, plan: ResolutionPlan): void {
  if (plan.runsOn === 'source' && vm.hostId !== row.sourceHostId) {
    throw new FlexmigError(
      ErrorCode.Conflict,
      `inventory already records VM ${vm.id} on ${vm.hostId}, not on the source ${row.sourceHostId} where it runs: resolving cannot move the record back; migrate the VM instead`,
      { vmId: vm.id, hostId: vm.hostId },
    );
  }
}

/**
 * POST /api/v1/migrations/{id}/resolve (docs/migrations.md, "Resolving a migration that needs attention"):
 * asks both agents where the VM runs, decides (resolution-decision.ts), fences the other copy and keeps
 * this one (agent.{hostId}.migration.fence), makes inventory agree, then records the resolution and its
 * `migration.resolved` event in one transaction. Nothing is recorded when a step fails: every step is
 * idempotent, and the operator resolves again. No database transaction is held across a NATS request.
 */
@Injectable()
export class ResolutionService {
  private readonly log = new Logger('resolution');

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly clock: DbClock,
  ) {}

  /** The resolutions of these migrations, by migration id (for the migrations' views). */
  async of(ids: string[]): Promise<Map<string, MigrationResolution>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.getRepository(MigrationResolutionEntity).createQueryBuilder('r').where('r.migration_id IN (:...ids)', { ids }).getMany();
    return new Map(rows.map((r) => [r.migrationId, resolutionView(r)]));
  }

  /** `by`: the caller (bearer token `sub`), never the body. */
  async resolve(id: string, input: ResolveMigration, by: string): Promise<MigrationResolution> {
    const row = await this.db.getRepository(MigrationEntity).findOneBy({ id });
    if (!row) throw new FlexmigError(ErrorCode.NotFound, `migration ${id} does not exist`, { migrationId: id });
    checkNeedsAttention(row);
    checkNotResolved(id, await this.db.getRepository(MigrationResolutionEntity).findOneBy({ migrationId: id }));

    const [source, target, { vm }] = await Promise.all([
      this.ask(row.sourceHostId, 'source', row.vmId),
      this.ask(row.targetHostId, 'target', row.vmId),
      this.bus.request(GetVm, { vmId: row.vmId }, { timeoutMs: inventoryDeadlineMs }),
    ]);
    const plan = decideResolution({ source, target }, input.runsOn);
    if (plan instanceof FlexmigError) throw plan;
    checkInventoryCanAgree(row, vm, plan);
    const reason = input.reason ?? (plan.decidedBy === 'agents' ? 'the agents agree where the VM runs' : `the operator stated that it runs on the ${plan.runsOn}`);

    // the other copy first: the kept one is resumed only once the other cannot run
    const fence = await this.fence(row, plan, reason);
    const kept = await this.keep(row, plan, fence.delivered, reason);
    await this.makeInventoryAgree(row, plan.runsOn);
    return this.record(row, plan, { by, reason, fence, kept });
  }

  /** One agent's view of the VM, or why it could not say within the deadline. */
  private async ask(hostId: string, role: Side, vmId: string): Promise<AgentAnswer> {
    try {
      const { vms } = await this.bus.request(ListAgentVms, {}, { params: { hostId }, timeoutMs: agentDeadlineMs });
      return { hostId, role, answered: true, copy: vms.find((v) => v.vmId === vmId)?.state ?? 'absent', error: null };
    } catch (e) {
      return { hostId, role, answered: false, copy: null, error: (e as Error).message };
    }
  }

  private command(row: MigrationEntity, side: Side, outcome: 'keep' | 'fence', resume: boolean, reason: string) {
    return this.bus.request(
      FenceMigration,
      { migrationId: row.id, vmId: row.vmId, role: side, outcome, resume, reason },
      { params: { hostId: side === 'source' ? row.sourceHostId : row.targetHostId }, timeoutMs: agentDeadlineMs },
    );
  }

  /**
   * Fences the other host's copy. An agent that answered must take the fence (else nothing is recorded:
   * 502, resolve again); one that could not be asked is tried once, and the record says it was not fenced.
   */
  private async fence(row: MigrationEntity, plan: ResolutionPlan, reason: string): Promise<Fence> {
    const { hostId, role } = plan.fence;
    try {
      const r = await this.command(row, role, 'fence', false, reason);
      return { hostId, delivered: true, action: r.action, note: r.note };
    } catch (e) {
      if (plan.fence.answered) throw this.agentFailed(row, hostId, 'fence its copy of the VM', e);
      const note = `not fenced: the ${role} agent could not be reached (${(e as Error).message}); if its host runs the VM, pause it there`;
      this.log.warn(`migration ${row.id}: ${note}`);
      return { hostId, delivered: false, action: 'none', note };
    }
  }

  private async keep(row: MigrationEntity, plan: ResolutionPlan, otherFenced: boolean, reason: string): Promise<Kept> {
    const { hostId, role } = plan.keep;
    const resume = plan.resumeKept && otherFenced;
    try {
      const r = await this.command(row, role, 'keep', resume, reason);
      const paused = r.after === 'paused' ? ': the VM is paused there (the other copy could not be fenced, so flexmig did not resume it)' : '';
      return { hostId, action: r.action, note: `${r.note}${paused}` };
    } catch (e) {
      if (plan.keep.answered) throw this.agentFailed(row, hostId, 'keep its copy of the VM', e);
      return { hostId, action: 'none', note: `the ${role} agent could not be reached (${(e as Error).message}): the operator stated that the VM runs there` };
    }
  }

  private agentFailed(row: MigrationEntity, hostId: string, what: string, e: unknown): FlexmigError {
    const code = isFlexmigError(e) ? e.code : ErrorCode.AgentFailed;
    return new FlexmigError(
      ErrorCode.AgentFailed,
      `the agent of ${hostId} answered where the VM runs but could not ${what} (${code}: ${(e as Error).message}); nothing was recorded: resolve migration ${row.id} again`,
      { migrationId: row.id, hostId, cause: code },
      true,
    );
  }

  /** The VM's record on the chosen host, as the saga's own ends do: relocate (the reservation becomes the allocation), or release. */
  private async makeInventoryAgree(row: MigrationEntity, runsOn: Side): Promise<void> {
    if (runsOn === 'target') {
      await this.bus.request(
        RelocateVm,
        { migrationId: row.id, vmId: row.vmId, fromHostId: row.sourceHostId, toHostId: row.targetHostId },
        { timeoutMs: inventoryDeadlineMs },
      );
    } else {
      await this.bus.request(ReleaseCapacity, { migrationId: row.id }, { timeoutMs: inventoryDeadlineMs });
    }
  }

  private async record(row: MigrationEntity, plan: ResolutionPlan, r: { by: string; reason: string; fence: Fence; kept: Kept }): Promise<MigrationResolution> {
    const now = new Date(this.clock.now());
    const hostId = plan.runsOn === 'source' ? row.sourceHostId : row.targetHostId;
    const agents = [plan.keep, plan.fence].sort((a, b) => a.role.localeCompare(b.role)).map(({ hostId: h, role, answered, copy, error }) => ({ hostId: h, role, answered, copy, error }));
    const entity: MigrationResolutionEntity = {
      migrationId: row.id,
      runsOn: plan.runsOn,
      hostId,
      decidedBy: plan.decidedBy,
      resolvedBy: r.by,
      resolvedAt: now,
      reason: r.reason,
      evidence: { agents, fence: r.fence, kept: r.kept },
    };
    const data: EventDataOf<typeof MigrationResolved> = {
      migrationId: row.id,
      vmId: row.vmId,
      runsOn: plan.runsOn,
      hostId,
      decidedBy: plan.decidedBy,
      by: r.by,
      reason: r.reason,
      agents,
      fence: r.fence,
    };
    try {
      await this.db.transaction(async (m) => {
        await m.getRepository(MigrationResolutionEntity).insert(entity);
        // (cast: TypeORM's deep-partial typing of a JSONB column does not take the event's loose object)
        await m.getRepository(OutboxEntity).insert({ eventId: `${row.id}:resolved`, type: MigrationResolved.type, subject: row.id, data, createdAt: now } as never);
      });
    } catch (e) {
      // another resolution of the same migration won the race
      if (isUniqueViolation(e)) checkNotResolved(row.id, await this.db.getRepository(MigrationResolutionEntity).findOneBy({ migrationId: row.id }));
      throw e;
    }
    this.log.log(`migration ${row.id} resolved by ${r.by}: the VM runs on the ${plan.runsOn} ${hostId} (${plan.decidedBy}); ${r.fence.note}`);
    return resolutionView(entity);
  }
}
