import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { Subscription } from '@nats-io/transport-node';
import { HostHeartbeat } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { INVENTORY_QUEUE } from '../config';
import { assertSubjectNamesHost } from './host-subject';
import { HeartbeatBatch } from './heartbeat-batch';

/**
 * A fleet's heartbeats, from the bus straight to {@link HeartbeatBatch}: 1,000 hosts send 500 a second,
 * and in a profile Nest's RPC pipeline (guards, context, pipes, observables) was about a tenth of
 * inventory's time for them (issue 11: heartbeats ≤ 5 % of a core; docs/scale.md has the figures before
 * and after). Nothing is skipped that the pipeline did for them: the bus
 * validates each beat against its contract, and the subject must name the beat's host (NATS permissions
 * let an agent publish on its own host's subjects only).
 */
@Injectable()
export class HeartbeatListener implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger(HeartbeatListener.name);
  private subscription?: Subscription;

  constructor(
    private readonly bus: NatsBus,
    private readonly batch: HeartbeatBatch,
  ) {}

  onApplicationBootstrap(): void {
    this.subscription = this.bus.subscribe(
      HostHeartbeat,
      async (beat, subject) => {
        try {
          assertSubjectNamesHost(HostHeartbeat.subject, subject, beat.hostId);
          await this.batch.receive(beat);
        } catch (e) {
          this.log.warn(`heartbeat on ${subject} not taken: ${(e as Error).message}`);
        }
      },
      { queue: INVENTORY_QUEUE },
    );
  }

  /** Before the batch's last flush (its onApplicationShutdown): no beat arrives after it. */
  beforeApplicationShutdown(): void {
    this.subscription?.unsubscribe();
  }
}
