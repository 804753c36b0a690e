import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { NatsBus } from '@flexmig/messaging';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';

/**
 * Whether this replica has heard heartbeats long enough to take a host's silence for the host's own.
 *
 * A beat that inventory could not receive (its NATS connection down) or could not record (PostgreSQL
 * refused the write) leaves the host's `last_heartbeat_at` old through no fault of the host. Without this,
 * a NATS or PostgreSQL outage longer than HOST_DOWN_AFTER_MS marked every host down at once (a `host.down`
 * each, the hosts-down alert, migrations to them refused), and up again at its next beat. So the liveness
 * sweep judges only while NATS is connected, and once HOST_DOWN_AFTER_MS has passed since the later of:
 * the process's start, NATS's reconnect, the last heartbeat write that failed. A host that really stopped
 * meanwhile is marked down that much later. Another replica that heard all along goes on judging.
 */
@Injectable()
export class Hearing implements OnApplicationShutdown {
  private readonly log = new Logger('liveness');
  private deafUntil: number;
  private readonly unwatch: () => void;

  constructor(
    private readonly bus: NatsBus,
    @Inject(INVENTORY_CONFIG) private readonly config: Pick<InventoryConfig, 'hostDownAfterMs'>,
  ) {
    this.deafUntil = Date.now() + config.hostDownAfterMs; // the beats sent before the start were not heard here
    this.unwatch = bus.onReconnect(() => {
      this.missed();
      this.log.log(`NATS reconnected: heartbeats sent meanwhile were not heard, so no host is marked down before ${new Date(this.deafUntil).toISOString()} (HOST_DOWN_AFTER_MS)`);
    });
  }

  onApplicationShutdown(): void {
    this.unwatch();
  }

  /** Heartbeats may have been lost up to `at` (a write that failed, a reconnect). */
  missed(at = Date.now()): void {
    this.deafUntil = Math.max(this.deafUntil, at + this.config.hostDownAfterMs);
  }

  /** Whether a host silent at `at` is silent on its own account: NATS connected, and heard for long enough. */
  judges(at = Date.now()): boolean {
    return this.bus.reachable && at >= this.deafUntil;
  }
}

/** The up hosts as one liveness sweep sees them. */
export interface FleetSilence {
  /** Hosts up (the only ones a sweep may mark down). */
  up: number;
  /** Of those, the ones not heard for half of HOST_DOWN_AFTER_MS: going silent, with the silent ones. */
  quiet: number;
  /** Of those, the ones not heard for HOST_DOWN_AFTER_MS: what the sweep would mark down. */
  silent: number;
}

/** When the fleet's silence is taken for this replica's deafness (HOST_MASS_SILENCE_SHARE, HOST_MASS_SILENCE_MIN). */
export interface MassSilenceRule {
  /** The share of the up hosts, 0 to 1. */
  share: number;
  /** And at least this many hosts; 0: never (the guard is off). */
  minHosts: number;
}

/**
 * Whether so many hosts fell quiet at once that the silence is more likely this replica's than theirs, so
 * that the sweep marks none of them down (as Kubernetes' node controller stops evicting in a zone where
 * most nodes went NotReady together). Hosts fail one by one; a replica cut from NATS without a reset (a
 * silent partition: its client sees nothing until its pings go unanswered) hears none of them from one
 * moment on. Counted on the hosts going quiet, not only the silent ones: after such a cut the silent ones
 * are, at the first sweep that finds any, only those whose last beat came earliest (at most one
 * heartbeat interval, under half of HOST_DOWN_AFTER_MS at the defaults: 2 s of 6 s), and every other host
 * is quiet too.
 */
export function massSilence(s: FleetSilence, rule: MassSilenceRule): boolean {
  return s.silent > 0 && rule.minHosts > 0 && s.quiet >= rule.minHosts && s.quiet / s.up >= rule.share;
}
