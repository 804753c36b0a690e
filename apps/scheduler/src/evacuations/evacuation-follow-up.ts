import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Coalesced } from '@flexmig/timing';
import { Admission } from '../admission/admission.service';
import { SCHEDULER_CONFIG, SchedulerConfig } from '../config';
import { evacuationPlacedAgain } from '../metrics';
import type { EvacuationItemRecord } from './evacuation.entity';
import { placeAgainBecause, REFUSED_TARGET_CODES } from './evacuation-view';
import { readMigrationFacts } from './migration-facts';
import { AskedFor, askFor, MIGRATION_REQUESTER, MigrationRequester } from './migration-requester';

/**
 * The running evacuations whose every VM was asked for (one still being asked for is its creator's), each
 * with whether a migration of it rolled back at step 1 with one of $1 (REFUSED_TARGET_CODES): read without a
 * lock, so that a migration's end costs one statement while evacuations run; `followUp` decides under the lock.
 */
const RUNNING_EVACUATIONS = `
  SELECT e.id,
         EXISTS (SELECT 1
                   FROM jsonb_array_elements(e.items) AS i(item)
                   JOIN migrations m ON m.id = (i.item->>'migrationId')::uuid
                  WHERE m.state = 'rolled-back'
                    AND m.saga->'cause'->>'step' = '1'
                    AND m.saga->'cause'->'error'->>'code' = ANY($1::text[])) AS refused
    FROM evacuations e
   WHERE e.state = 'running' AND e.requested_at IS NOT NULL`;

/**
 * The record of a VM placed again, from the answer to its new request: the new migration (or why none could
 * be started), with the refused one kept in `earlierMigrationIds`. null: the request failed for a reason of
 * the moment (an unreachable inventory): the record stays as it is, and the next look asks again.
 */
export function afterPlacingAgain(record: EvacuationItemRecord, asked: AskedFor): EvacuationItemRecord | null {
  if (asked.retryable || record.migrationId === null) return null;
  return {
    ...record,
    migrationId: asked.migrationId,
    reason: asked.reason,
    code: asked.code,
    earlierMigrationIds: [...(record.earlierMigrationIds ?? []), record.migrationId],
  };
}

/**
 * Places again the VMs of running evacuations whose migration step 1 refused because the target placement
 * chose could no longer take them (placeAgainBecause: it went into maintenance or down, ran out of room). No
 * read of the hosts closes the window between placement's choice and step 1's reservation, and evacuating
 * several hosts at once is what opens it: a later evacuation puts an earlier one's target into maintenance.
 *
 * It looks when a migration ends (Admission's slot-freed signal: this replica's ends, and the others' as
 * PostgreSQL's notifications bring them), when this replica has just asked for an evacuation's migrations,
 * and on every reconcile interval as the fallback. A look is one query (the running evacuations, and which
 * have a refused migration), and none at a migration's end once a look found no evacuation running (until the
 * next interval). Each evacuation with a refused migration is followed up under
 * its row lock (SKIP LOCKED: a replica never waits for another one doing the same), so each refused migration
 * is replaced once; a VM already moving again (another request) is followed, not asked for twice.
 */
@Injectable()
export class EvacuationFollowUp implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('evacuation');
  private readonly looking = new Coalesced(
    () => this.lookOnce(),
    (e) => this.log.warn(`evacuations not followed up (the next interval tries again): ${(e as Error).message}`),
  );
  private timer?: NodeJS.Timeout;
  private stopped = false;
  /** False once a look found no running evacuation, until this replica starts one or the interval looks again. */
  private mayHaveWork = true;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    @Inject(MIGRATION_REQUESTER) private readonly requester: MigrationRequester,
    private readonly admission: Admission,
    @Inject(SCHEDULER_CONFIG) private readonly config: SchedulerConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.admission.onSlotFreed(() => {
      if (this.mayHaveWork) void this.look();
    });
    const interval = () => {
      if (this.stopped) return;
      void this.poke().finally(() => {
        if (!this.stopped) this.timer = setTimeout(interval, this.config.reconcileIntervalMs);
      });
    };
    this.timer = setTimeout(interval, this.config.reconcileIntervalMs);
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.looking.stop();
    clearTimeout(this.timer);
  }

  /** Looks soon, even if the last look found nothing (an evacuation was just asked for, or the interval passed). */
  poke(): Promise<void> {
    this.mayHaveWork = true;
    return this.look();
  }

  /** Looks at every running evacuation; calls coalesce into one loop, and the promise is of a look that began after the call. */
  private look(): Promise<void> {
    return this.looking.request();
  }

  private async lookOnce(): Promise<void> {
    const running: { id: string; refused: boolean }[] = await this.db.query(RUNNING_EVACUATIONS, [[...REFUSED_TARGET_CODES]]);
    if (running.length === 0) {
      this.mayHaveWork = false;
      return;
    }
    for (const { id, refused } of running) if (refused) await this.followUp(id);
  }

  /** One evacuation, under its row lock: places again what step 1 refused. Returns how many VMs were asked for again. */
  async followUp(evacuationId: string): Promise<number> {
    return this.db.transaction(async (m) => {
      const [row]: { host_id: string; items: EvacuationItemRecord[]; requested_by: string | null }[] = await m.query(
        `SELECT host_id, items, requested_by FROM evacuations WHERE id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED`,
        [evacuationId],
      );
      if (!row) return 0; // ended, or another replica follows it up right now
      const facts = await readMigrationFacts(
        m,
        row.items.map((i) => i.migrationId),
      );
      const items = [...row.items];
      let asked = 0;
      for (const [i, item] of row.items.entries()) {
        const why = placeAgainBecause(item, item.migrationId ? facts.get(item.migrationId) : undefined);
        if (!why) continue;
        const answer = await askFor(this.requester, item.vmId, row.requested_by ?? 'evacuation');
        const next = afterPlacingAgain(item, answer);
        evacuationPlacedAgain.inc({ outcome: !next ? 'later' : next.migrationId ? 'migration' : 'no-host' });
        if (!next) {
          this.log.warn(`evacuation ${evacuationId}: VM ${item.name} not placed again yet (${answer.reason}); the next look tries again`);
          continue;
        }
        items[i] = next;
        asked++;
        this.log.log(
          `evacuation ${evacuationId} of host ${row.host_id}: VM ${item.name}: ${why}: ` +
            (next.migrationId ? `now migration ${next.migrationId}` : `no other host can take it (${next.reason})`),
        );
      }
      if (asked > 0) await m.query(`UPDATE evacuations SET items = $2::jsonb, updated_at = now() WHERE id = $1`, [evacuationId, JSON.stringify(items)]);
      return asked;
    });
  }
}
