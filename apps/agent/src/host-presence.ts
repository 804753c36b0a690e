import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ErrorCode, FlexmigError, HostCpu, HostHeartbeat, RegisterHost, ReportedVm, isFlexmigError, vmDigest } from '@flexmig/contracts';
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

/** The full VM list rides on every Nth heartbeat even when its digest did not change (AGENT_VM_REPORT_EVERY_BEATS). */
export const defaultVmReportEveryBeats = 10;

export type RegistrationState = 'pending' | 'registered' | 'refused' | 'stopped';

export interface HostPresenceOptions {
  /** One agent warns on every unanswered attempt; a fleet of hundreds warns once per host, then logs verbose. */
  warnEveryRetry: boolean;
  /** Tests shorten the waits. */
  backoff?: Backoff;
  /** Extra time a refused duplicate keeps trying, beyond when a silent predecessor would have gone (tests). */
  duplicateGraceMs?: number;
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
  /** This process's claim on the host: inventory refuses another instance while this one heartbeats. */
  readonly instanceId: string = randomUUID();
  /** The digest of the VM list last sent in full (registration or heartbeat), and beats since. */
  private sentDigest?: string;
  private beatsSinceFullReport = 0;

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
    let ownedSince: number | undefined;
    for (let attempt = 1; !this.stopping.signal.aborted; attempt++) {
      try {
        const registration = this.registration();
        const { host, cluster } = await this.bus.request(RegisterHost, registration, { params: { hostId: this.env.HOST_ID } });
        if (this.stopping.signal.aborted) break;
        this.sentDigest = vmDigest(registration.vms);
        this.beatsSinceFullReport = 0;
        this.lastError = undefined;
        this.log.log(`registered host ${host.id} in cluster ${cluster.name}: ${this.cpu.modelName}, highest CPU mode ${host.maxImcMode ?? 'none'}`);
        return (this.registrationState = 'registered');
      } catch (e) {
        if (this.stopping.signal.aborted) break;
        this.lastError = (e as Error)?.message ?? String(e);
        if (isFlexmigError(e) && e.code === ErrorCode.HostOwnedByAnotherAgent) {
          // Another process of this HOST_ID heartbeats: this one's own predecessor (restarted before
          // inventory saw it go silent) or a real duplicate. Wait for it to go silent; give up once a
          // predecessor would have (HOST_DOWN_AFTER_MS plus two beats), so a duplicate stops listening.
          ownedSince ??= Date.now();
          const retryAfterMs = Number(e.details?.retryAfterMs ?? backoffDelayMs(backoff, attempt));
          const limitMs = Number(e.details?.hostDownAfterMs ?? 0) + 2 * this.env.HEARTBEAT_INTERVAL_MS;
          if (Date.now() - ownedSince + retryAfterMs > limitMs + (this.o.duplicateGraceMs ?? 0)) {
            this.refusal = new FlexmigError(
              e.code,
              `${e.message}. Another agent with HOST_ID ${this.env.HOST_ID} has kept heartbeating for ${Date.now() - ownedSince} ms: ` +
                'this one gives up. Stop the other agent or give this one its own HOST_ID.',
              e.details,
              false,
            );
            return (this.registrationState = 'refused');
          }
          this.log.warn(`host ${this.env.HOST_ID} is held by another agent process (${e.message}); this one (instance ${this.instanceId}) tries again in ${retryAfterMs} ms`);
          await sleep(Math.max(1, retryAfterMs), this.stopping.signal);
          continue;
        }
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
      instanceId: this.instanceId,
      vms: this.reportedVms(),
    };
  }

  /** What the agent holds, as inventory reconciles it. */
  private reportedVms(): ReportedVm[] {
    return this.driver.listVms().map((v) => ({ vmId: v.vmId, state: v.state, ...(v.migrationId ? { migrationId: v.migrationId } : {}) }));
  }

  /**
   * A heartbeat carries the digest of the VM set; the set itself only when the digest changed since it was
   * last sent, and every AGENT_VM_REPORT_EVERY_BEATS beats (a lost beat is made good; inventory also asks
   * with agent.{hostId}.vm.list when its copy's digest differs).
   */
  private beat(): void {
    try {
      const vms = this.reportedVms();
      const digest = vmDigest(vms);
      const every = this.env.AGENT_VM_REPORT_EVERY_BEATS ?? defaultVmReportEveryBeats;
      const full = digest !== this.sentDigest || this.beatsSinceFullReport + 1 >= every;
      this.bus.publish(
        HostHeartbeat,
        { hostId: this.env.HOST_ID, at: new Date().toISOString(), vmCount: vms.length, instanceId: this.instanceId, vmDigest: digest, ...(full ? { vms } : {}) },
        { hostId: this.env.HOST_ID },
      );
      if (full) {
        this.sentDigest = digest;
        this.beatsSinceFullReport = 0;
      } else this.beatsSinceFullReport += 1;
      this.heartbeatsSent += 1;
    } catch (e) {
      this.log.warn(`heartbeat not sent: ${(e as Error).message}`);
    }
  }
}
