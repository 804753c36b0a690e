import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { FlexmigError } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';
import { HostPresence } from './host-presence';

/** Registers the host with inventory (retrying until inventory answers), then heartbeats. */
@Injectable()
export class HostPresenceService implements OnApplicationShutdown {
  private readonly log = new Logger('presence');
  private presence?: HostPresence;
  private stopped = false;

  constructor(
    private readonly bus: NatsBus,
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    @Inject(AGENT_ENV) private readonly env: AgentEnv,
  ) {}

  /**
   * Called once the agent listens for commands, so inventory can use it as soon as it knows it.
   * A refusal (e.g. the CPU lacks the cluster's mode) fails the agent's start: a host that cannot join
   * has nothing to do.
   */
  async begin(): Promise<void> {
    const presence = new HostPresence(this.bus, this.env, this.driver, await this.driver.hostCpu(), this.log, { warnEveryRetry: true });
    this.presence = presence;
    if (this.stopped) presence.stop();
    if ((await presence.register()) === 'refused') {
      const e = presence.refusal!;
      throw new FlexmigError(e.code, `inventory refused host ${this.env.HOST_ID}: ${e.message}`, e.details);
    }
    presence.startHeartbeats();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.presence?.stop();
  }
}
