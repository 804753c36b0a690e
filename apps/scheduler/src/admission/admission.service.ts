import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { MigrationEntity, OutboxEntity } from '../entities';
import { ClusterSettingsService } from '../settings/cluster-settings.service';
import { DRIVEN, MigrationStore, NewMigration, Transition } from '../store/migration-store';
import { OutboxRelay } from '../store/outbox-relay';
import { selectAdmissible } from './admission';

/** One PostgreSQL advisory lock serialises admission across replicas, so limits hold cluster-wide. */
const DISPATCH_LOCK = 0x666c786d; // "flxm"
/** A replica that finds another one dispatching tries again this soon. */
const dispatchRetryMs = 25;
/** Queued migrations looked at per pass. */
const queueWindow = 1000;

/**
 * Admission: a new migration waits in the queue (`queued`) until the limits (outbound and inbound per
 * host, per cluster) allow it, then starts, leased to this replica. Started migrations are handed to the
 * listeners (the engine runs their first action).
 */
@Injectable()
export class Admission implements OnApplicationShutdown {
  private readonly log = new Logger('admission');
  private readonly listeners: ((started: Transition[]) => void)[] = [];
  private dispatchLoop?: Promise<void>;
  private dispatchAgain = false;
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly store: MigrationStore,
    private readonly settings: ClusterSettingsService,
    private readonly relay: OutboxRelay,
  ) {}

  onApplicationShutdown(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  /** `fn` gets every batch of migrations this replica started, after their commit. */
  onStarted(fn: (started: Transition[]) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Queues a new migration with its `migration.requested` event in the same commit, then starts it if
   * the limits allow. Returns it as started (and driven here), or still queued.
   */
  async admit(row: NewMigration, requested: Omit<OutboxEntity, 'seq'>): Promise<MigrationEntity> {
    const entity = await this.store.insertQueued(row, requested);
    await this.dispatch();
    this.relay.flushSoon();
    return this.store.current(entity.id) ?? entity;
  }

  /**
   * Starts queued migrations, oldest first, as far as the limits allow. Calls coalesce into one loop per
   * replica (so a burst of requests costs one pass, and one pool connection, not one each); the resolved
   * promise means a pass that began after the call has finished.
   */
  dispatch(): Promise<void> {
    this.dispatchAgain = true;
    this.dispatchLoop ??= (async () => {
      try {
        while (this.dispatchAgain && !this.stopped) {
          this.dispatchAgain = false;
          await this.dispatchOnce();
        }
      } catch (e) {
        this.log.warn(`dispatch failed (the next tick retries): ${(e as Error).message}`);
      } finally {
        this.dispatchLoop = undefined;
      }
    })();
    return this.dispatchLoop;
  }

  /**
   * One pass, under an advisory lock so that two replicas never admit past a limit together. A replica
   * that finds the lock taken does not wait for it (holding a connection while waiting is what starves a
   * pool); it tries again a moment later.
   */
  private async dispatchOnce(): Promise<void> {
    const started = await this.db.transaction(async (m) => {
      const [{ locked }] = await m.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [DISPATCH_LOCK]);
      if (!locked) {
        clearTimeout(this.retry);
        this.retry = setTimeout(() => void this.dispatch(), dispatchRetryMs);
        return [];
      }
      const queued = await this.store.queued(m, queueWindow);
      if (queued.length === 0) return [];
      const active: { cluster_id: string; source_host_id: string; target_host_id: string }[] = await m.query(
        `SELECT cluster_id, source_host_id, target_host_id FROM migrations WHERE ${DRIVEN}`,
      );
      const limitsOf = await this.settings.limitsFor([...new Set(queued.map((q) => q.clusterId))], m);
      const ids = new Set(
        selectAdmissible(
          queued,
          active.map((a) => ({ clusterId: a.cluster_id, sourceHostId: a.source_host_id, targetHostId: a.target_host_id })),
          limitsOf,
        ),
      );
      return this.store.startQueued(
        m,
        queued.filter((q) => ids.has(q.id)),
      );
    });
    if (started.length === 0) return;
    this.store.remember(started.map((s) => s.row));
    for (const fn of this.listeners) fn(started);
    this.relay.flushSoon();
  }

  /** A migration still in the queue has nothing to undo: it ends `cancelled` at once. null: it is not queued. */
  async cancelQueued(id: string, reason: string, by: string): Promise<Transition | null> {
    const done = await this.db.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [DISPATCH_LOCK]);
      return this.store.cancelQueued(m, id, reason, by);
    });
    if (done) this.relay.flushSoon();
    return done;
  }
}
