import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Host } from '@flexmig/contracts';
import { queryReturning } from '@flexmig/persistence';
import { hostNotFound } from '../errors';
import { HostsService } from './hosts.service';

/**
 * Host maintenance: a host in maintenance takes no new VMs and no incoming migrations (VM creation and
 * capacity reservation refuse it, under the host's row lock: `hostToFill`, capacity.ts); the VMs already on it
 * keep running until they are moved away (an evacuation, in the scheduler).
 */
@Injectable()
export class MaintenanceService {
  private readonly log = new Logger(MaintenanceService.name);

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly hosts: HostsService,
  ) {}

  /** Idempotent: setting the flag it already has changes nothing. Answers the host as it is now. */
  async set(hostId: string, maintenance: boolean): Promise<Host> {
    // FOR UPDATE: a reservation or a VM creation that holds the host's row lock finishes first; any after sees the flag
    const rows = await queryReturning<{ id: string; was: boolean }>(
      this.db,
      `UPDATE hosts h SET maintenance = $2
         FROM (SELECT id, maintenance AS was FROM hosts WHERE id = $1 FOR UPDATE) old
        WHERE h.id = old.id RETURNING h.id, old.was`,
      [hostId, maintenance],
    );
    if (rows.length === 0) throw hostNotFound(hostId);
    if (rows[0].was !== maintenance) this.log.log(`host ${hostId} ${maintenance ? 'enters' : 'leaves'} maintenance`);
    return this.hosts.get(hostId);
  }
}
