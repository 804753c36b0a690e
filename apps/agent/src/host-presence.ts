import { Logger } from '@nestjs/common';
import { hostname } from 'node:os';
import { ErrorCode, FlexmigError, HostCpu, HostHeartbeat, RegisterHost, isFlexmigError } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { type Backoff, backoffDelayMs, sleep } from '@flexmig/timing';
import type { AgentEnv } from './config';
import type { HypervisorDriver } from './drivers/driver';

/**
 * Registration retries: inventory may start after the agent, or not at all (a test). 500 ms doubling
 * to 5 s, jittered (−20 %) because agents (or a fleet's hundreds of hosts) that found inventory absent
 * together should not all ask again at the same moment.
 */
export const registrationBackoff: Backoff = { initialMs: 500, multiplier: 2, maxMs: 5_000, jitter: 0.2 };

export type RegistrationState = 'pending' | 'registered' | 'refused' | 'stopped';

export interface HostPresenceOptions {
  /** One agent warns on every unanswered attempt; a fleet of hundreds warns once per host, then logs verbose. */
  warnEveryRetry: boolean;
  /** Tests shorten the waits. */
  backoff?: Backoff;
}

/**
 * A host's presence in inventory, for the agent (HostPresenceService) and each host of a sim fleet:
 * register (retrying with backoff until inventory answers, giving up only on a refusal) and heartbeat.
 */
export class HostPresence {
  private readonly stopping = new AbortController();
  private heartbeatTimer?: NodeJS.Timeout;
  private registrationState: RegistrationState = 'pending';
  /** The last reason registration did not succeed (inventory absent, or its refusal). */
  lastError?: string;
  /** Inventory's refusal, when registration ended `refused`. */
  refusal?: FlexmigError;
  heartbeatsSent = 0;

  constructor(
    private readonly bus: Pick<NatsBus, 'request' | 'publish'>,
    private readonly env: AgentEnv,
    private readonly driver: HypervisorDriver,
    private readonly cpu: HostCpu,
    private readonly log: Logger,
    private readonly o: HostPresenceOptions,
  ) {}

  get state(): RegistrationState {
    return this.registrationState;
  }

  /**
   * Registers, retrying until inventory answers. Never throws: resolves with how it ended — `refused`
   * (non-retryable answer, see `refusal`: retrying changes nothing) or `stopped` (stop() was called).
   */
  async register(): Promise<RegistrationState> {
    const backoff = this.o.backoff ?? registrationBackoff;
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      try {
        const { host, cluster } = await this.bus.request(RegisterHost, this.registration(), { params: { hostId: this.env.HOST_ID } });
        if (this.stopping.signal.aborted) break;
        this.lastError = undefined;
        this.log.log(`registered host ${host.id} in cluster ${cluster.name}: ${this.cpu.modelName}, highest CPU mode ${host.maxImcMode ?? 'none'}`);
        return (this.registrationState = 'registered');
      } catch (e) {
        if (this.stopping.signal.aborted) break;
        this.lastError = (e as Error)?.message ?? String(e);
        // INTERNAL may be a passing fault of inventory (its database restarting): retried like an absence
        if (isFlexmigError(e) && !e.retryable && e.code !== ErrorCode.Internal) {
          this.refusal = e;
          return (this.registrationState = 'refused');
        }
        const wait = backoffDelayMs(backoff, attempt);
        const level = this.o.warnEveryRetry || attempt === 1 ? 'warn' : 'verbose';
        this.log[level](`registration of ${this.env.HOST_ID} not answered (${this.lastError}); retrying in ${wait} ms`);
        await sleep(wait, this.stopping.signal);
      }
    }
    return (this.registrationState = 'stopped');
  }

  /** Heartbeats every HEARTBEAT_INTERVAL_MS, the first after `firstAfterMs` (a fleet spreads its hosts' first beats). */
  startHeartbeats(firstAfterMs = this.env.HEARTBEAT_INTERVAL_MS): void {
    if (this.stopping.signal.aborted) return;
    this.heartbeatTimer = setTimeout(() => {
      this.beat();
      this.heartbeatTimer = setInterval(() => this.beat(), this.env.HEARTBEAT_INTERVAL_MS);
    }, firstAfterMs);
  }

  /** Stops heartbeats and ends a registration in progress (it resolves `stopped`). Idempotent. */
  stop(): void {
    this.stopping.abort();
    clearTimeout(this.heartbeatTimer);
    clearInterval(this.heartbeatTimer);
    if (this.registrationState === 'pending') this.registrationState = 'stopped';
  }

  /** Built afresh on every attempt: the VMs running here change while inventory is away. */
  private registration() {
    const { memoryMiB, vcpus } = this.driver.capacity();
    return {
      hostId: this.env.HOST_ID,
      ...(this.env.CLUSTER_ID ? { clusterId: this.env.CLUSTER_ID } : { clusterName: this.env.CLUSTER_NAME }),
      hostname: this.driver.kind === 'sim' ? `${this.env.HOST_ID}.sim` : hostname(),
      cpu: this.cpu,
      memoryMiB,
      vcpus,
      driver: this.driver.kind,
      migrationAddress: this.env.MIGRATION_ADDRESS,
      vms: this.driver
        .listVms()
        .filter((v) => v.state === 'running' || v.state === 'paused')
        .map((v) => ({ vmId: v.vmId, state: 'running' as const })),
    };
  }

  private beat(): void {
    try {
      this.bus.publish(HostHeartbeat, { hostId: this.env.HOST_ID, at: new Date().toISOString(), vmCount: this.driver.listVms().length }, { hostId: this.env.HOST_ID });
      this.heartbeatsSent += 1;
    } catch (e) {
      this.log.warn(`heartbeat not sent: ${(e as Error).message}`);
    }
  }
}
