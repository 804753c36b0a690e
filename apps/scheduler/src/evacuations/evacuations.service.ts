import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ErrorCode, EvacuationView, FlexmigError, GetHost, ListVms, type Page, type PageQuery, SetHostMaintenance, Vm } from '@flexmig/contracts';
import { NatsBus, requestAllPages } from '@flexmig/messaging';
import { isUniqueViolation, keysetPage } from '@flexmig/persistence';
import { EvacuationEntity, EvacuationItemRecord } from './evacuation.entity';
import { evacuationView, MigrationFacts } from './evacuation-view';
import { EvacuationFollowUp } from './evacuation-follow-up';
import { readMigrationFacts } from './migration-facts';
import { askFor, MIGRATION_REQUESTER, MigrationRequester } from './migration-requester';

const alreadyEvacuating = (hostId: string, evacuationId?: string) =>
  new FlexmigError(
    ErrorCode.Conflict,
    `host ${hostId} is already being evacuated${evacuationId ? ` by ${evacuationId}` : ''}: follow that one, or wait for it to finish`,
    { hostId, evacuationId },
  );

/**
 * Evacuation (host maintenance): the host goes into maintenance (inventory: it takes no new VMs), then a
 * migration without a target is asked for each of its VMs, one after another, so that each placement
 * sees the ones before it. The migrations go through the scheduler's ordinary admission: placement, the
 * limits per host and per cluster, and the queue for what is beyond them. A VM that cannot move is
 * recorded with the reason. A VM whose migration step 1 refused because its target could no longer take it
 * is placed again (EvacuationFollowUp). The evacuation's progress is read from the migrations themselves; it
 * is `running` until each has ended (evaluated whenever it is read, so any replica shows the same thing).
 */
@Injectable()
export class EvacuationsService {
  private readonly log = new Logger('evacuation');

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    @Inject(MIGRATION_REQUESTER) private readonly migrations: MigrationRequester,
    private readonly followUp: EvacuationFollowUp,
  ) {}

  /** `requestedBy`: the caller (bearer token `sub`), recorded on the evacuation and each of its migrations. */
  async create(hostId: string, requestedBy: string): Promise<EvacuationView> {
    const { host } = await this.bus.request(GetHost, { hostId }); // an unknown host: NOT_FOUND (404)
    const repo = this.db.getRepository(EvacuationEntity);
    // an earlier evacuation whose migrations have all ended but that nobody looked at since is finished first
    for (const running of await repo.findBy({ hostId, state: 'running' })) {
      const view = await this.refresh(running);
      if (view.state === 'running') throw alreadyEvacuating(hostId, running.id);
    }

    const now = new Date();
    const row: EvacuationEntity = {
      id: randomUUID(),
      hostId,
      clusterId: host.clusterId,
      state: 'running',
      items: [],
      requestedBy,
      requestedAt: null,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    try {
      await repo.insert(row);
    } catch (e) {
      if (isUniqueViolation(e)) throw alreadyEvacuating(hostId);
      throw e;
    }

    let vms: Vm[];
    let inMaintenanceAt: number;
    try {
      await this.bus.request(SetHostMaintenance, { hostId, maintenance: true });
      // a read of the hosts that starts from now on shows this host in maintenance
      inMaintenanceAt = Date.now();
      vms = await requestAllPages(this.bus, ListVms, { hostId }, (r) => r.vms);
    } catch (e) {
      // nothing was asked for yet: undo the record, so that the request can simply be repeated
      await repo.delete({ id: row.id });
      throw e;
    }
    this.log.log(`evacuation ${row.id}: host ${hostId} is in maintenance; moving its ${vms.length} VM(s) away`);

    // one after another: each placement counts the migrations admitted before it (read fresh each time),
    // and they share the reads of the cluster's hosts made since the host went into maintenance
    for (const vm of vms) {
      row.items.push(await this.requestMigration(vm, requestedBy, inMaintenanceAt));
      row.updatedAt = new Date();
      await repo.update({ id: row.id }, { items: row.items, updatedAt: row.updatedAt });
    }
    row.requestedAt = new Date();
    await repo.update({ id: row.id }, { requestedAt: row.requestedAt, updatedAt: row.requestedAt });
    // a migration that step 1 refused meanwhile is placed again from now on (EvacuationFollowUp)
    void this.followUp.poke();
    const notMoved = row.items.filter((i) => !i.migrationId);
    if (notMoved.length) this.log.warn(`evacuation ${row.id}: ${notMoved.length} VM(s) cannot move: ${notMoved.map((i) => `${i.name}: ${i.reason}`).join('; ')}`);
    return this.refresh(row);
  }

  private async requestMigration(vm: Vm, requestedBy: string, hostsReadSince: number): Promise<EvacuationItemRecord> {
    const item = { vmId: vm.id, name: vm.name, earlierMigrationIds: [] };
    if (vm.state !== 'running') {
      return {
        ...item,
        migrationId: null,
        reason: `VM ${vm.name} is ${vm.state}; only a running VM is live-migrated (move or remove it by other means)`,
        code: ErrorCode.VmNotRunning,
      };
    }
    const { migrationId, reason, code } = await askFor(this.migrations, vm.id, requestedBy, { hostsReadSince });
    return { ...item, migrationId, reason, code };
  }

  async get(id: string): Promise<EvacuationView> {
    const row = await this.db.getRepository(EvacuationEntity).findOneBy({ id });
    if (!row) throw new FlexmigError(ErrorCode.NotFound, `evacuation ${id} does not exist`, { evacuationId: id });
    return this.refresh(row);
  }

  /** A page of evacuations, newest first (created_at, id), with the filter kept. */
  async page(q: { hostId?: string } & PageQuery): Promise<Page<EvacuationView>> {
    const qb = this.db.getRepository(EvacuationEntity).createQueryBuilder('e');
    if (q.hostId) qb.andWhere('e.host_id = :hostId', { hostId: q.hostId });
    const { rows, nextCursor } = await keysetPage(qb, { keys: ['created_at', 'id'], idKey: 'id', direction: 'DESC', page: q });
    const facts = await readMigrationFacts(this.db, rows.flatMap((r) => r.items.map((i) => i.migrationId)));
    return { items: await Promise.all(rows.map((r) => this.refresh(r, facts))), nextCursor };
  }

  /** The view, from the migrations as they are now; records the end the first time it is seen. */
  private async refresh(row: EvacuationEntity, facts?: Map<string, MigrationFacts>): Promise<EvacuationView> {
    const migrations = facts ?? (await readMigrationFacts(this.db, row.items.map((i) => i.migrationId)));
    const view = evacuationView(row, migrations);
    if (row.state === 'running' && view.state !== 'running') {
      const now = new Date();
      // only the first reader ends it (any replica may be reading it at the same time)
      await this.db
        .getRepository(EvacuationEntity)
        .createQueryBuilder()
        .update()
        .set({ state: view.state, finishedAt: now, updatedAt: now })
        .where('id = :id AND state = :running', { id: row.id, running: 'running' })
        .execute();
      const ended = await this.db.getRepository(EvacuationEntity).findOneByOrFail({ id: row.id });
      Object.assign(row, ended);
      this.log.log(`evacuation ${row.id} of host ${row.hostId}: ${view.state} (${view.counts.moved} of ${view.counts.total} VMs moved)`);
      return evacuationView(row, migrations);
    }
    return view;
  }
}
