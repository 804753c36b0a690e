import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import {
  CreateMigration,
  ErrorCode,
  FlexmigError,
  isoTime,
  MigrationProgressMessage,
  progressMatchesSubject,
  MigrationResolution,
  MigrationView,
  TERMINAL_MIGRATION_STATES,
  type Page,
  type PageQuery,
} from '@flexmig/contracts';
import { NatsBus, traceparentOf } from '@flexmig/messaging';
import { isUniqueViolation, keysetPage, prepared, runPrepared } from '@flexmig/persistence';
import { canCancel, createSaga, DEFAULT_POLICY, stepDefinition, summarize } from '@flexmig/saga';
import type { Attention, SagaPolicyInput } from '@flexmig/saga';
import { MigrationEntity } from '../entities';
import { placementView } from './placement-view';
import { DbClock } from '../db-clock';
import { Reconciler } from '../engine/reconciler';
import { Admission } from '../admission/admission.service';
import { completionFigures } from '../figures';
import { PlacementService } from '../placement/placement.service';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { ResolutionService } from '../resolution/resolution.service';
import { vmAndTarget } from './prechecks';
import { PredictionService } from '../prediction/prediction.service';
import { LatestProgress } from './latest-progress';
import { ClusterSettingsService } from '../settings/cluster-settings.service';

@Injectable()
export class MigrationsService {
  private readonly progress = new LatestProgress();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly engine: Reconciler,
    private readonly admission: Admission,
    private readonly placer: PlacementService,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
    private readonly clock: DbClock,
    private readonly resolutions: ResolutionService,
    private readonly predictions: PredictionService,
    private readonly settings: ClusterSettingsService,
  ) {
    // the latest progress samples of each running migration, for GET /migrations/:id (lossy by design); only
    // a sample whose subject names its migration and host (the view then asks for its own hosts')
    bus.subscribe(MigrationProgressMessage, (sample, subject) => {
      if (progressMatchesSubject(subject, sample)) this.progress.record(sample);
    });
  }

  /**
   * Admission: every check happens before anything is written; 202 with the migration when accepted.
   * `requestedBy` is the caller (the bearer token's `sub`), recorded on the row and in migration.requested.
   */
  async create(input: CreateMigration, requestedBy: string): Promise<MigrationView> {
    const row = await this.admitted(input, requestedBy);
    return this.view(row, row.state === 'queued' ? await this.queuePositions([row.id]) : undefined);
  }

  /**
   * The admission behind `create`, without the view (an evacuation needs only the id, not the queue's
   * positions, which a queued request would read again each time).
   * `hostsReadSince`: placement may use a read of the cluster's hosts that started then (PlacementService.place).
   */
  async admitted(input: CreateMigration, requestedBy: string, opts: { hostsReadSince?: number } = {}): Promise<MigrationEntity> {
    // the host placement chooses is held for this replica's other placements until the migration is a row
    // (or refused): placements asked together spread over the hosts (PlacementsInFlight)
    const chosen = await vmAndTarget(this.bus, this.placer, input, { ...opts, hold: true });
    try {
      return await this.admit(input, requestedBy, chosen);
    } finally {
      if (chosen.placement) this.placer.release(chosen.vm.id);
    }
  }

  private async admit(input: CreateMigration, requestedBy: string, { vm, target, placement }: Awaited<ReturnType<typeof vmAndTarget>>): Promise<MigrationEntity> {
    // the prediction's policy from a recent read (admission reads the migration's own in its transaction)
    const policy = await this.settings.recentPolicyFor(vm.clusterId, input.policy ?? {});
    // recorded with the migration and carried beside the actual figures at the end; a migration never waits on
    // a failed prediction, nor longer than PREDICTION_WAIT_MS on inputs still being measured
    const predicted = await this.predictions.recordedFor(vm, target, policy, placement && { chosen: placement.chosen, reason: placement.reason });
    const id = randomUUID();
    const now = new Date(this.clock.now());
    const ref = { migrationId: id, vmId: vm.id, sourceHostId: vm.hostId, targetHostId: target.id };
    try {
      // one active migration per VM: a unique index decides (also between two requests at the same instant);
      // the policy (the cluster's settings under the request's fields) is read in admission's transaction
      return await this.admission.admit(
        {
          id,
          vmId: vm.id,
          clusterId: vm.clusterId,
          sourceHostId: vm.hostId,
          targetHostId: target.id,
          saga: createSaga(ref, now.getTime(), this.sagaPolicy()),
          vm: { id: vm.id, name: vm.name, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus, cpuBaseline: vm.cpuBaseline },
          targetAddress: target.migrationAddress,
          requestedBy,
          placement,
          traceParent: traceparentOf() ?? null,
          ...predicted,
          createdAt: now,
        },
        input.policy ?? {},
        { event_id: `${id}:requested`, type: 'migration.requested', subject: id, data: { ...ref, requestedBy } },
      );
    } catch (e) {
      if (isUniqueViolation(e)) await this.checkNoActiveMigration(vm.id, true);
      throw e;
    }
  }

  private async checkNoActiveMigration(vmId: string, raced = false): Promise<void> {
    const active = await this.db
      .getRepository(MigrationEntity)
      .createQueryBuilder('m')
      .where('m.vm_id = :vmId', { vmId })
      .andWhere('m.state NOT IN (:...terminal)', { terminal: TERMINAL_MIGRATION_STATES })
      .getOne();
    if (active || raced) {
      throw new FlexmigError(
        ErrorCode.MigrationActive,
        `VM ${vmId} is already being migrated by ${active?.id ?? 'another request'}: wait for it to finish or cancel it`,
        { vmId, migrationId: active?.id },
      );
    }
  }

  async get(id: string): Promise<MigrationView> {
    const row = await this.db.getRepository(MigrationEntity).findOneBy({ id });
    if (!row) throw new FlexmigError(ErrorCode.NotFound, `migration ${id} does not exist`, { migrationId: id });
    const resolved = row.state === 'failed-needs-attention' ? await this.resolutions.of([id]) : undefined;
    return this.view(row, row.state === 'queued' ? await this.queuePositions([id]) : undefined, resolved);
  }

  /** A page of migrations, newest first (created_at, id), with the filters kept. */
  async page(q: { vmId?: string; state?: string } & PageQuery): Promise<Page<MigrationView>> {
    const qb = this.db.getRepository(MigrationEntity).createQueryBuilder('m');
    if (q.vmId) qb.andWhere('m.vm_id = :vmId', { vmId: q.vmId });
    if (q.state) qb.andWhere('m.state = :state', { state: q.state });
    const { rows, nextCursor } = await keysetPage(qb, { keys: ['created_at', 'id'], idKey: 'id', direction: 'DESC', page: q });
    const queued = rows.filter((r) => r.state === 'queued').map((r) => r.id);
    const positions = queued.length > 0 ? await this.queuePositions(queued) : undefined;
    const resolved = await this.resolutions.of(rows.filter((r) => r.state === 'failed-needs-attention').map((r) => r.id));
    return { items: rows.map((r) => this.view(r, positions, resolved)), nextCursor };
  }

  /** `by`: the caller (bearer token `sub`), recorded in the saga and in migration.cancelled. */
  async cancel(id: string, reason: string, by: string): Promise<MigrationView> {
    const row = await this.db.getRepository(MigrationEntity).findOneBy({ id });
    if (!row) throw new FlexmigError(ErrorCode.NotFound, `migration ${id} does not exist`, { migrationId: id });
    const can = canCancel(row.saga);
    if (!can.ok) throw new FlexmigError(ErrorCode.Conflict, `migration ${id} cannot be cancelled: ${can.reason}`, { migrationId: id, state: row.state });
    await this.engine.cancel(id, reason, by);
    return this.get(id);
  }

  private sagaPolicy(): SagaPolicyInput {
    const cap = this.config.stepTimeoutMs;
    const unknownLimit = this.config.outcomeUnknownLimitMs ? { outcomeUnknownLimitMs: this.config.outcomeUnknownLimitMs } : {};
    if (!cap) return unknownLimit;
    return {
      ...unknownLimit,
      stepTimeoutMs: Object.fromEntries(Object.entries(DEFAULT_POLICY.stepTimeoutMs).map(([step, ms]) => [step, Math.min(ms, cap)])),
      compensationTimeoutMs: Math.min(DEFAULT_POLICY.compensationTimeoutMs, cap),
      inProgressPollMs: Math.min(DEFAULT_POLICY.inProgressPollMs, cap),
    };
  }

  /**
   * The 1-based positions in the queue (oldest first, as dispatch takes it) of the queued migrations named:
   * PostgreSQL counts, and only their rows come back, however long the queue.
   */
  private async queuePositions(ids: string[]): Promise<Map<string, number>> {
    const rows = await runPrepared<{ id: string; position: number }>(this.db, QUEUE_POSITIONS, [ids]);
    return new Map(rows.map((r) => [r.id, r.position]));
  }

  view(row: MigrationEntity, positions?: Map<string, number>, resolutions?: Map<string, MigrationResolution>): MigrationView {
    const s = summarize(row.saga);
    const cause = row.saga.cause;
    const attention = row.saga.attention;
    const failure =
      cause?.kind === 'step-failed'
        ? { step: cause.step, stepName: cause.name, code: cause.error.code, message: cause.reason }
        : attention
          ? { step: attention.step, stepName: stepDefinition(attention.step).name, code: attention.error.code, message: attention.error.message }
          : null;
    const live = this.progress.latest(row.id, row.sourceHostId) ?? this.progress.latest(row.id, row.targetHostId);
    const queued = row.state === 'queued';
    return {
      id: row.id,
      vmId: row.vmId,
      sourceHostId: row.sourceHostId,
      targetHostId: row.targetHostId,
      state: queued ? 'queued' : row.saga.phase,
      requestedBy: row.requestedBy ?? null,
      queuePosition: queued ? (positions?.get(row.id) ?? null) : null,
      placement: row.placement ? placementView(row.placement) : null,
      policy: row.policy,
      createdAt: isoTime(row.createdAt),
      updatedAt: isoTime(row.updatedAt),
      finishedAt: row.finishedAt ? isoTime(row.finishedAt) : null,
      currentStep: s.currentStep ? { number: s.currentStep.step, name: s.currentStep.name, status: s.currentStep.status } : null,
      cancellable: s.cancellable,
      steps: s.steps.map((st) => ({
        number: st.step,
        name: st.name,
        actor: st.actor,
        status: st.status,
        attempt: st.attempt,
        startedAt: st.startedAt,
        endedAt: st.endedAt,
        durationMs: st.durationMs,
        error: st.lastError,
        compensation: st.compensation
          ? { name: st.compensation.name, attempt: st.compensation.attempt, startedAt: st.compensation.startedAt, endedAt: st.compensation.endedAt, error: st.compensation.lastError }
          : null,
      })),
      result: row.saga.phase === 'completed' ? { ...completionFigures(row.saga), ...(row.prediction ? { predicted: row.prediction.predicted } : {}) } : null,
      failure,
      attention: attention ? { kind: attention.kind, step: attention.step, stepName: stepDefinition(attention.step).name, message: attentionMessage(attention) } : null,
      progress: live && !s.terminal ? (live as unknown as Record<string, unknown>) : null,
      resolution: resolutions?.get(row.id) ?? null,
      prediction: row.prediction ?? null,
      predictionError: row.predictionError ?? null,
    };
  }
}

function attentionMessage(a: Attention): string {
  switch (a.kind) {
    case 'outcome-unknown':
      return `the agent could not be asked what it did with this step for ${Math.round((a.at - a.since) / 1000)} s (${a.error.message}); find where the VM runs, then resolve the migration`;
    case 'finish-failed':
      return `the VM runs on the target, but this step could not finish (${a.error.message})`;
    case 'resume-target-failed':
      return `the target could not resume the VM, which stays paused on the source (${a.error.message})`;
    case 'compensation-failed':
      return `undoing this step failed (${a.error.message}); steps ${a.uncompensatedSteps.join(', ') || 'none'} were not undone`;
  }
}

const QUEUE_POSITIONS = prepared(
  'scheduler_queue_positions',
  `SELECT id, position::int FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS position FROM migrations WHERE state = 'queued') q
   WHERE id = ANY($1::uuid[])`,
);
