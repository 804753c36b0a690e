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
