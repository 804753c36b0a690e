import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { HostHeartbeat, MessageOf } from '@flexmig/contracts';
import { prepared, runPrepared } from '@flexmig/persistence';
import { Repeats } from '@flexmig/timing';
import { Counter } from 'prom-client';
import { HostsService } from './hosts.service';
import { Hearing } from './hearing';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';

type Beat = MessageOf<typeof HostHeartbeat>;

const heartbeatWrites = new Counter({
  name: 'flexmig_heartbeat_writes_total',
  help: 'Heartbeats written by inventory: one by one (something changed) or batched (liveness only), by statement.',
  labelNames: ['kind'],
});

const heartbeatsUnregistered = new Counter({
  name: 'flexmig_heartbeats_unregistered_total',
  help: 'Heartbeats dropped because their host is not registered (yet): a host beats from its start, and registers meanwhile.',
});

/** The beats of many hosts whose VM set did not change, in one statement (prepared: every flush runs it). */
const BEATS_THAT_CHANGE_NOTHING = prepared(
  'inventory_heartbeats_batch',
  `UPDATE hosts h SET last_heartbeat_at = now(),
     reported_at = CASE WHEN h.reported_digest = b.digest THEN now() ELSE h.reported_at END
   FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) AS b(id, instance, digest, full_list)
   WHERE h.id = b.id AND h.agent_instance_id = b.instance AND h.vm_digest = b.digest AND h.state = 'up'
     AND (NOT b.full_list OR h.reported_digest = b.digest)
   RETURNING h.id`,
);

/**
 * Makes a fleet's heartbeats cheap (issue 11: 1,000 hosts cost inventory 12 % of a core while idle, one
 * UPDATE per beat). A beat that carries nothing new for a host this replica already wrote up (the same
 * agent process, the same VM digest; a VM list, if any, of that digest), or a beat without a VM list from
 * a host this replica has not written yet, is only noted; every `heartbeatFlushMs` one UPDATE writes the
 * liveness of all hosts noted since. The UPDATE keeps a host's row only where it still matches (up, same
 * owner, same digest and, for a beat with a VM list, the stored list of that digest). A beat it did not
 * write is then written one by one, as any beat that changes something: at once for a host this replica
 * knew (marked down meanwhile, taken over by another agent process, a list to store), and for the others
 * only if one lookup of them all finds them registered. Beats of hosts that are not registered yet (a
 * fleet's hosts beat while they register) thus cost two statements per flush in all, not three each:
 * one by one they starved the registrations of a 1,000-host fleet of pool connections.
 */
@Injectable()
export class HeartbeatBatch implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(HeartbeatBatch.name);
  private readonly writeFailures = new Repeats(this.log);
  /** What this replica last wrote for each host it saw beat: its owner and VM digest, with the host up. */
  private readonly known = new Map<string, { instanceId: string; vmDigest: string }>();
  /** The liveness-only beats since the last flush, by host (the latest one). */
  private pending = new Map<string, Beat>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  /** The hosts whose rows the flush under way writes. */
  private flushingHosts = new Set<string>();
  /** The beats a flush handed back to be written one by one, still being written. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly hosts: HostsService,
    @Inject(INVENTORY_CONFIG) private readonly config: InventoryConfig,
    private readonly hearing: Hearing,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.flush(), this.config.heartbeatFlushMs);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    await this.idle();
  }

  /** Resolves once the beats that flushes handed back to be written one by one are written (or failed). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /** One heartbeat: noted for the next flush when it changes nothing this replica knows of, else written now. */
  async receive(beat: Beat): Promise<void> {
    const k = this.known.get(beat.hostId);
    // a VM list whose digest this replica wrote up already says nothing new either (agents repeat it every
    // AGENT_VM_REPORT_EVERY_BEATS beats): the flush writes it only where the row's reported list has that digest
    if ((!k && !beat.vms) || (k && k.instanceId === beat.instanceId && k.vmDigest === beat.vmDigest)) {
      this.pending.set(beat.hostId, beat);
      return;
    }
    this.pending.delete(beat.hostId); // this beat is newer than the one noted
    // not while a flush writes this host's row: PostgreSQL may skip a row that another UPDATE changed under
    // the single write's own locking join, and the beat would be refused as another process's
    if (this.flushingHosts.has(beat.hostId)) await this.flushing;
    await this.writeOne(beat);
  }

  /** Writes the noted beats in one statement. Never runs twice at once; resolves when done. */
  flush(): Promise<void> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    if (this.pending.size === 0) return;
    const beats = [...this.pending.values()];
    this.pending = new Map();
    this.flushingHosts = new Set(beats.map((b) => b.hostId));
    let written: Set<string>;
    try {
      const rows = await runPrepared<{ id: string }>(this.db, BEATS_THAT_CHANGE_NOTHING, [beats.map((b) => b.hostId), beats.map((b) => b.instanceId), beats.map((b) => b.vmDigest), beats.map((b) => b.vms !== undefined)]);
      heartbeatWrites.inc({ kind: 'batch' });
      written = new Set(rows.map((r) => r.id));
    } catch (e) {
      this.flushingHosts = new Set();
      // the beats are lost, not the hosts: the next beat of each is written one by one, and no host is
      // taken for silent until their beats have had time to be written again
      for (const b of beats) this.known.delete(b.hostId);
      this.hearing.missed();
      this.writeFailures.failed(
        `${beats.length} heartbeat(s) could not be written (${(e as Error).message}); each host's next beat is written on its own, and no host is marked down for HOST_DOWN_AFTER_MS`,
        'batch',
      );
      return;
    }
    this.writeFailures.recovered('writing heartbeats');
    this.flushingHosts = new Set();
    const strangers: Beat[] = [];
    for (const b of beats) {
      const k = this.known.get(b.hostId);
      if (written.has(b.hostId)) {
        // a host this replica had not written yet, now written up: its next beats are batched as known
        if (!k) this.known.set(b.hostId, { instanceId: b.instanceId, vmDigest: b.vmDigest });
        continue;
      }
      if (!k) {
        strangers.push(b);
        continue;
      }
      // the row moved on (down, another owner, another digest): unless a newer beat of the host was written since, write this one on its own
      if (k.instanceId !== b.instanceId || k.vmDigest !== b.vmDigest) continue;
      this.known.delete(b.hostId);
      this.writeInBackground(b);
    }
    if (strangers.length > 0) await this.writeRegistered(strangers);
  }

  /** Beats of hosts this replica had not written, that the batch did not write: one by one for those registered, dropped for the others. */
  private async writeRegistered(beats: Beat[]): Promise<void> {
    let registered: Set<string>;
    try {
      const rows = (await this.db.query('SELECT id FROM hosts WHERE id = ANY($1::text[])', [beats.map((b) => b.hostId)])) as { id: string }[];
      registered = new Set(rows.map((r) => r.id));
    } catch (e) {
      this.hearing.missed();
      this.writeFailures.failed(`${beats.length} heartbeat(s) of hosts this replica had not seen could not be checked (${(e as Error).message}); their next beats are tried again`, 'check');
      return;
    }
    for (const b of beats) {
      if (registered.has(b.hostId)) this.writeInBackground(b);
      else heartbeatsUnregistered.inc();
    }
  }

  /**
   * One beat written on its own. Not awaited: the next flush does not wait for these (a stall that left
   * many hosts down must not hold every other host's beats back); `idle()` does.
   */
  private writeInBackground(b: Beat): void {
    const w = this.writeOne(b)
      .catch((e) => this.writeFailures.failed(`heartbeat of host ${b.hostId} not written: ${(e as Error).message}`, 'single'))
      .finally(() => this.inFlight.delete(w));
    this.inFlight.add(w);
  }

  private async writeOne(beat: Beat): Promise<void> {
    heartbeatWrites.inc({ kind: 'single' });
    let written: boolean;
    try {
      written = await this.hosts.heartbeat(beat);
    } catch (e) {
      this.hearing.missed(); // this host's beat is lost, not the host
      throw e;
    }
    if (written) this.known.set(beat.hostId, { instanceId: beat.instanceId, vmDigest: beat.vmDigest });
    else this.known.delete(beat.hostId);
  }
}
