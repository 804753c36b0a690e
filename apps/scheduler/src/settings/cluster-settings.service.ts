import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { z } from 'zod';
import { type ClusterSettings, MigrationPolicy, MigrationPolicyInputSchema, MigrationPolicySchema } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { ClusterSettingsEntity } from '../entities';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';

export const LimitsInputSchema = z
  .object({
    maxOutboundPerHost: z.number().int().min(0).max(10_000),
    maxInboundPerHost: z.number().int().min(0).max(10_000),
    maxPerCluster: z.number().int().min(0).max(100_000),
  })
  .partial()
  .strict();

export const ClusterSettingsInputSchema = z
  .object({ limits: LimitsInputSchema.optional(), policy: MigrationPolicyInputSchema.strict().optional() })
  .strict();
export type ClusterSettingsInput = z.infer<typeof ClusterSettingsInputSchema>;

/** Admission limits and migration policy per cluster, over the environment's defaults. */
@Injectable()
export class ClusterSettingsService {
  /** Recent reads for {@link ClusterSettingsService.recentPolicyFor}: cluster → its overrides and when read. */
  private readonly recent = new Map<string, { policy: ClusterSettings['overrides']['policy']; at: number }>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
  ) {}

  /** `m`: the caller's transaction (admission reads the policy in the one that stores the migration). */
  async get(clusterId: string, m: EntityManager = this.db.manager): Promise<ClusterSettings> {
    const [row] = await runPrepared<ClusterSettingsEntity>(m, SETTINGS_OF_CLUSTERS, [[clusterId]]);
    return this.effective(clusterId, row ?? null);
  }

  async put(clusterId: string, input: ClusterSettingsInput): Promise<ClusterSettings> {
    this.recent.delete(clusterId);
    await this.db.getRepository(ClusterSettingsEntity).save({ clusterId, limits: input.limits ?? {}, policy: input.policy ?? {}, updatedAt: new Date() } as never);
    return this.get(clusterId);
  }

  /**
   * The settings of several clusters from their stored rows (a cluster without a row has the defaults):
   * admission reads the rows in the statement that reads its queue ({@link STORED_SETTINGS}).
   */
  fromRows(rows: readonly StoredClusterSettings[]): (clusterId: string) => ClusterSettings {
    const stored = new Map(rows.map((r) => [r.clusterId, r]));
    const effective = new Map<string, ClusterSettings>();
    return (id) => {
      let s = effective.get(id);
      if (!s) effective.set(id, (s = this.effective(id, stored.get(id) ?? null)));
      return s;
    };
  }

  /** The policy of one migration: defaults, then the cluster's, then the request's fields. */
  async policyFor(clusterId: string, requested: Partial<MigrationPolicy> = {}, m: EntityManager = this.db.manager): Promise<MigrationPolicy> {
    return policyOf(await this.get(clusterId, m), requested);
  }

  /**
   * The policy as {@link policyFor} gives it, from a read at most `maxAgeMs` old: for what only estimates
   * (a prediction before admission), never for the migration itself, whose policy admission reads in its
   * own transaction. Saves a database round trip per migration request.
   */
  async recentPolicyFor(clusterId: string, requested: Partial<MigrationPolicy> = {}, maxAgeMs = 5_000): Promise<MigrationPolicy> {
    let hit = this.recent.get(clusterId);
    if (!hit || Date.now() - hit.at > maxAgeMs) {
      hit = { policy: (await this.get(clusterId)).overrides.policy, at: Date.now() };
      this.recent.set(clusterId, hit);
    }
    return MigrationPolicySchema.parse({ ...hit.policy, ...requested });
  }

  private effective(clusterId: string, row: StoredClusterSettings | null): ClusterSettings {
    const limits = LimitsInputSchema.parse(row?.limits ?? {});
    const policy = MigrationPolicyInputSchema.parse(row?.policy ?? {});
    return {
      clusterId,
      limits: { ...this.config.limits, ...limits },
      overrides: { limits, policy },
      policy: MigrationPolicySchema.parse(policy),
    };
  }
}

/** The policy of one migration in a cluster: its settings' policy, then the request's fields. */
export function policyOf(settings: ClusterSettings, requested: Partial<MigrationPolicy> = {}): MigrationPolicy {
  return MigrationPolicySchema.parse({ ...settings.overrides.policy, ...requested });
}

/** A row of `cluster_settings` as {@link STORED_SETTINGS} reads it. */
export type StoredClusterSettings = Pick<ClusterSettingsEntity, 'clusterId' | 'limits' | 'policy'>;

/** The stored settings, as a SELECT for a statement to filter (here, and in admission's read of its queue). */
export const STORED_SETTINGS = 'SELECT cluster_id AS "clusterId", limits, policy FROM cluster_settings';

/** The stored settings of the clusters named in $1 (prepared: the settings' routes and a replica that finds the dispatch lock taken read them). */
const SETTINGS_OF_CLUSTERS = prepared('scheduler_settings_of_clusters', `${STORED_SETTINGS} WHERE cluster_id = ANY($1::uuid[])`);
