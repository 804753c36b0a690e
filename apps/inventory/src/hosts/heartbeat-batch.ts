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
  help: 'Heartbeats written by inventory, by statement: batched (liveness, or a new VM set with its list, of hosts this replica wrote) or one by one (the others).',
  labelNames: ['kind'],
});

const heartbeatsUnregistered = new Counter({
  name: 'flexmig_heartbeats_unregistered_total',
  help: 'Heartbeats dropped because their host is not registered (yet): a host beats from its start, and registers meanwhile.',
});

/**
 * The beats of many hosts in one statement (prepared: every flush runs it). A beat that changes nothing
 * writes only where the row is as it says (up, same owner, same digest and, for one with its VM list, that
 * list stored); one that carries a new VM set with its list (`vms`) writes it only where the row still
 * holds the digest this replica wrote before (`prev`): a row that moved on meanwhile (another replica wrote
 * a later beat, the host went down) is not written over, and the beat goes one by one. The list's time is
 * when inventory received it (`age_ms` before the flush), not the flush's: the reconciler takes a list
 * as news only some time after a VM changed (REPORT_SETTLE_MS), and the flush must not make it look newer.
 */
const BEATS = prepared(
  'inventory_heartbeats_batch',
  `UPDATE hosts h SET last_heartbeat_at = now(),
     vm_digest = b.digest,
     reported_vms = CASE WHEN b.vms IS NULL THEN h.reported_vms ELSE b.vms::jsonb END,
     reported_digest = CASE WHEN b.vms IS NULL THEN h.reported_digest ELSE b.digest END,
     reported_at = CASE WHEN b.vms IS NOT NULL OR h.reported_digest = b.digest
                        THEN now() - make_interval(secs => b.age_ms / 1000) ELSE h.reported_at END
   FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::float8[])
          AS b(id, instance, digest, full_list, prev, vms, age_ms)
   WHERE h.id = b.id AND h.agent_instance_id = b.instance AND h.state = 'up'
     AND CASE WHEN b.vms IS NULL THEN h.vm_digest = b.digest AND (NOT b.full_list OR h.reported_digest = b.digest)
              ELSE h.vm_digest = b.prev END
   RETURNING h.id`,
);

/** A beat noted for the next flush: when it came, and for one that brings a new VM set, the digest it replaces. */
interface Noted {
  beat: Beat;
  at: number;
  /** The digest this replica last wrote for the host, which the row must still hold: only for a beat with a new VM set. */
  prev?: string;
}

/**
 * Makes a fleet's heartbeats cheap (issue 11: 1,000 hosts cost inventory 12 % of a core while idle, one
 * UPDATE per beat). A beat from a host this replica already wrote up, from the same agent process, that
 * carries nothing new (the same VM digest; a VM list, if any, of that digest) or a new VM set with its list
 * (each VM created or gone changes its host's set: one statement per VM created, until 2026-12-07), or a
 * beat without a VM list from a host this replica has not written yet, is only noted; every
 * `heartbeatFlushMs` one UPDATE writes all the hosts noted since, each only where its row is as this
 * replica last wrote it (`BEATS`). A beat it did not write is then written one by one, as any other beat:
 * at once for a host this replica knew (marked down meanwhile, taken over by another agent process, its
 * row written by another replica), and for the others only if one lookup of them all finds them
 * registered. Beats of hosts that are not registered yet (a fleet's hosts beat while they register) thus
 * cost two statements per flush in all, not three each: one by one they starved the registrations of a
 * 1,000-host fleet of pool connections.
 */
@Injectable()
export class HeartbeatBatch implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(HeartbeatBatch.name);
  private readonly writeFailures = new Repeats(this.log);
  /** What this replica last wrote for each host it saw beat: its owner and VM digest, with the host up. */
  private readonly known = new Map<string, { instanceId: string; vmDigest: string }>();
  /** The beats noted since the last flush, by host (the latest one). */
  private pending = new Map<string, Noted>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  /** The hosts whose rows the flush under way writes. */
  private flushingHosts = new Set<string>();
  /** The beats a flush handed back to be written one by one, still being written. */
  private readonly inFlight = new Set<Promise<void>>();
  /** The single writes under way, by host (the latest). */
  private readonly writing = new Map<string, Promise<void>>();

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

  /** One heartbeat: noted for the next flush when it can wait for it (see the class), else written now. */
  async receive(beat: Beat): Promise<void> {
    // not while a flush or a single write writes this host's row: what it writes decides what this beat is
    // (a new VM set noted now would hold the row to the digest before it, and the flush would then take it
    // for older than the row), and a single write beside a flush could be refused as another process's
    // (PostgreSQL may skip a row that another UPDATE changed under the single write's own locking join)
    for (;;) {
      if (this.flushingHosts.has(beat.hostId)) await this.flushing;
      else if (this.writing.has(beat.hostId)) await this.writing.get(beat.hostId)!.catch(() => undefined); // its failure is its caller's to say
      else break;
    }
    if (this.note(beat)) return;
    this.pending.delete(beat.hostId); // this beat is newer than the one noted
    await this.writeOne(beat);
  }

  /** Notes the beat for the next flush and answers true, or answers false: it is to be written now. */
  private note(beat: Beat): boolean {
    const k = this.known.get(beat.hostId);
    let prev: string | undefined;
    if (!k) {
      if (beat.vms) return false; // a list of a host this replica has not written: no digest to hold its row to
    } else if (k.instanceId !== beat.instanceId) {
      return false;
    } else if (k.vmDigest !== beat.vmDigest) {
      // a new VM set: the flush writes it with its list, which this beat carries or one noted before it of
      // the same digest did (agents send the list when the set changed; the beats after repeat the digest)
      const noted = this.pending.get(beat.hostId)?.beat;
      const vms = beat.vms ?? (noted?.vmDigest === beat.vmDigest ? noted.vms : undefined);
      if (!vms) return false;
      beat = { ...beat, vms };
      prev = k.vmDigest;
    }
    // (a VM list whose digest this replica wrote up already says nothing new: agents repeat it every
    // AGENT_VM_REPORT_EVERY_BEATS beats, and the flush writes it only where the row's reported list has that digest)
    this.pending.set(beat.hostId, { beat, at: Date.now(), ...(prev !== undefined ? { prev } : {}) });
    return true;
  }

  /** Writes the noted beats in one statement. Never runs twice at once; resolves when done. */
  flush(): Promise<void> {
    this.flushing ??= this.flushNow().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushNow(): Promise<void> {
    if (this.pending.size === 0) return;
    const noted = [...this.pending.values()];
    const beats = noted.map((n) => n.beat);
    this.pending = new Map();
    this.flushingHosts = new Set(beats.map((b) => b.hostId));
    let written: Set<string>;
    try {
      const now = Date.now();
      const rows = await runPrepared<{ id: string }>(this.db, BEATS, [
        beats.map((b) => b.hostId),
        beats.map((b) => b.instanceId),
        beats.map((b) => b.vmDigest),
        beats.map((b) => b.vms !== undefined),
        noted.map((n) => n.prev ?? null),
        noted.map((n) => (n.prev !== undefined ? JSON.stringify(n.beat.vms) : null)),
        noted.map((n) => now - n.at),
      ]);
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
    for (const { beat: b, prev } of noted) {
      if (written.has(b.hostId)) {
        // written up (a host this replica had not written yet: its next beats are batched as known)
        this.known.set(b.hostId, { instanceId: b.instanceId, vmDigest: b.vmDigest });
        continue;
      }
      const k = this.known.get(b.hostId);
      if (!k) {
        strangers.push(b);
        continue;
      }
      // the row moved on (down, another owner, another digest): unless a newer beat of the host was written since, write this one on its own
      if (k.instanceId !== b.instanceId || k.vmDigest !== (prev ?? b.vmDigest)) continue;
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
    const w = this.writeOneNow(beat);
    this.writing.set(beat.hostId, w);
    try {
      await w;
    } finally {
      if (this.writing.get(beat.hostId) === w) this.writing.delete(beat.hostId);
    }
  }

  private async writeOneNow(beat: Beat): Promise<void> {
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
