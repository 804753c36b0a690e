import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { hostname } from 'node:os';
import { ErrorCode, FlexmigError, HostHeartbeat, RegisterHost, isFlexmigError } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { HypervisorDriver } from './drivers/driver';
import { HYPERVISOR_DRIVER } from './migration-steps.service';
import { AGENT_ENV, AgentEnv } from './config';

const retryDelaysMs = [500, 1_000, 2_000, 5_000]; // then every 5 s: inventory may start after the agent

/** Registers the host with inventory (retrying until inventory answers), then heartbeats. */
@Injectable()
export class HostPresenceService implements OnApplicationShutdown {
  private readonly log = new Logger('presence');
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly bus: NatsBus,
    @Inject(HYPERVISOR_DRIVER) private readonly driver: HypervisorDriver,
    @Inject(AGENT_ENV) private readonly env: AgentEnv,
  ) {}

  /** Called once the agent listens for commands, so inventory can use it as soon as it knows it. */
  async begin(): Promise<void> {
    await this.registerUntilAccepted();
    this.timer = setInterval(() => this.beat(), this.env.HEARTBEAT_INTERVAL_MS);
  }

  private async registerUntilAccepted(): Promise<void> {
    const cpu = await this.driver.hostCpu();
    const { memoryMiB, vcpus } = this.driver.capacity();
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const { host, cluster } = await this.bus.request(RegisterHost, {
          hostId: this.env.HOST_ID,
          ...(this.env.CLUSTER_ID ? { clusterId: this.env.CLUSTER_ID } : { clusterName: this.env.CLUSTER_NAME }),
          hostname: this.driver.kind === 'sim' ? `${this.env.HOST_ID}.sim` : hostname(),
          cpu,
          memoryMiB,
          vcpus,
          driver: this.driver.kind,
          migrationAddress: this.env.MIGRATION_ADDRESS,
          vms: this.driver.listVms().filter((v) => v.state === 'running' || v.state === 'paused').map((v) => ({ vmId: v.vmId, state: 'running' as const })),
        });
        this.log.log(`registered host ${host.id} in cluster ${cluster.name}: ${cpu.modelName}, highest CPU mode ${host.maxImcMode ?? 'none'}`);
        return;
      } catch (e) {
        if (isFlexmigError(e) && !e.retryable && e.code !== ErrorCode.Internal) {
          throw new FlexmigError(e.code, `inventory refused host ${this.env.HOST_ID}: ${e.message}`, e.details);
        }
        const wait = retryDelaysMs[Math.min(attempt, retryDelaysMs.length - 1)];
        this.log.warn(`registration of ${this.env.HOST_ID} not answered (${(e as Error).message}); retrying in ${wait} ms`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private beat(): void {
    try {
      this.bus.publish(HostHeartbeat, { hostId: this.env.HOST_ID, at: new Date().toISOString(), vmCount: this.driver.listVms().length });
    } catch (e) {
      this.log.warn(`heartbeat not sent: ${(e as Error).message}`);
    }
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
