import { Logger } from '@nestjs/common';
import type { Subscription } from '@nats-io/transport-node';
import {
  CompensateStep,
  HostCpu,
  HostIdSchema,
  ListAgentVms,
  FenceMigration,
  QueryMigration,
  QueryStreamEnd,
  RunStep,
  StartVm,
  SampleDirtyRate,
  OpenLinkSink,
  ProbeLink,
} from '@flexmig/contracts';
import { simulatedHostCpu } from '@flexmig/cpu-models';
import { NatsBus } from '@flexmig/messaging';
import { CommonEnvSchema, warnAnonymous } from '@flexmig/service-kit';
import { Gate } from '@flexmig/timing';
import { AgentHandlers } from '../agent.handlers';
import { PredictionHandlers } from '../prediction.handlers';
import { AgentEnv } from '../config';
import { MigrationStepsService } from '../migration-steps.service';
import { simDriverOptions } from '../drivers/create-driver';
import { SimDriver } from '../drivers/sim.driver';
import { SimClock } from '../drivers/sim-clock';
import { defaultVmReportEveryBeats, HostPresence, RegistrationState } from '../host-presence';

export type { RegistrationState };
/** Heartbeats of a big fleet are spread over this much of the first interval, so they do not all land at once. */
const maxHeartbeatJitterMs = 1_000;
/** SimFleetOptions.registrationsInFlight's default. */
export const defaultRegistrationsInFlight = 32;

export interface SimFleetOptions {
  natsUrl: string;
  subjectPrefix: string;
  /**
   * The fleet's NATS identity (`flexmig auth fleet`): one identity for all its hosts, since they share one
   * connection; it may act as any agent of the deployment, so it is for simulations only (docs/security.md).
   */
  credsFile?: string;
  tlsCaFile?: string;
  /** Number of simulated hosts. */
  size: number;
  /** Host ids are `<hostPrefix>-001`, `-002`… (at least three digits, zero-padded). */
  hostPrefix: string;
  /** CPU generations (catalog baseline names), given to the hosts round-robin. */
  cpus: string[];
  clusterId?: string;
  /** Used when clusterId is not set; inventory creates the cluster if missing. */
  clusterName: string;
  heartbeatIntervalMs: number;
  /** The same for every host of the fleet (the VMs' own workloads still vary). */
  sim: {
    memoryMiB: number;
    vcpus: number;
    bandwidthMiBps: number;
    timeScale: number;
    dirtyRateMiBps: number;
    workingSetMiB: number;
    /** SIM_SWITCHOVER: `qemu` does steps 5 and 7 inside steps 4 and 6, as the qemu driver does (default `steps`). */
    switchover?: 'steps' | 'qemu';
  };
  /** Register the hosts with inventory (in the background, retried). Default true. */
  register?: boolean;
  /**
   * At most this many registrations in flight at once (default 32). A thousand hosts registering together
   * would queue in inventory past their request timeout; each retry then adds to the queue, and the beats of
   * the hosts already registered wait behind it until inventory takes them for down (docs/scale.md).
   */
  registrationsInFlight?: number;
  /** Serve on this connection instead of opening one; the fleet then leaves it open at stop(). */
  bus?: NatsBus;
  logLevel?: AgentEnv['LOG_LEVEL'];
  /** Clock of the hosts' sim drivers (tests). */
  clock?: SimClock;
}

export interface FleetHostStatus {
  hostId: string;
  cpu: string;
  registration: RegistrationState;
  /** The last reason registration did not succeed (inventory absent, or its refusal). */
  registrationError?: string;
  heartbeatsSent: number;
  vmCount: number;
}

/**
 * One simulated host of a fleet: its own id, SimDriver, subjects (`<prefix>.agent.<hostId>.…`),
 * heartbeats and registration. The command handling is the agent's own (AgentHandlers and
 * MigrationStepsService, with their step ledger), bound straight on NatsBus.handle instead of a Nest
 * app per host.
 */
export class FleetHost {
  readonly driver: SimDriver;
  readonly steps: MigrationStepsService;
  private readonly handlers: AgentHandlers;
  private readonly prediction: PredictionHandlers;
  private readonly subs: Subscription[] = [];
  private readonly log: Logger;
  private readonly presence: HostPresence;
  private stopped = false;
  private registering = false;
  private registration?: Promise<void>;

  constructor(
    private readonly bus: NatsBus,
    readonly env: AgentEnv,
    readonly cpu: HostCpu,
    private readonly heartbeatIntervalMs: number,
    clock?: SimClock,
  ) {
    this.log = new Logger(`fleet/${env.HOST_ID}`);
    this.driver = new SimDriver({
      ...simDriverOptions(env, cpu),
      ...(clock ? { clock } : {}),
    });
    this.steps = new MigrationStepsService(this.driver, bus, env);
    this.handlers = new AgentHandlers(this.driver, this.steps, env);
    this.prediction = new PredictionHandlers(this.driver, env);
    this.presence = new HostPresence(bus, env, this.driver, cpu, this.log, { warnEveryRetry: false });
  }

  get hostId(): string {
    return this.env.HOST_ID;
  }

  /** Listens on the host's subjects, starts heartbeating, and registers in the background (through `registrations`, the fleet's gate). */
  start(opts: { register: boolean; registrations?: Gate }): void {
    const params = { params: { hostId: this.hostId } };
    const h = this.handlers;
    this.subs.push(
      this.bus.handle(StartVm, (r) => h.startVm(r), params),
      this.bus.handle(ListAgentVms, () => h.list(), params),
      this.bus.handle(RunStep, (r) => h.step(r), params),
      this.steps.listenForReservations(),
      this.bus.handle(CompensateStep, (r) => h.compensate(r), params),
      this.bus.handle(QueryMigration, (r) => h.query(r), params),
      this.bus.handle(QueryStreamEnd, (r) => h.streamEnd(r), params),
      this.bus.handle(FenceMigration, (r) => this.steps.fence(r), params),
      this.bus.handle(SampleDirtyRate, (r) => this.prediction.dirtyRate(r), params),
      this.bus.handle(OpenLinkSink, (r) => this.prediction.openLinkSink(r), params),
      this.bus.handle(ProbeLink, (r) => this.prediction.probeLink(r), params),
    );
    this.presence.startHeartbeats(Math.floor(Math.random() * Math.min(this.heartbeatIntervalMs, maxHeartbeatJitterMs)));
    this.registering = opts.register;
    if (opts.register) this.registration = this.registerInBackground(opts.registrations);
  }

  status(): FleetHostStatus {
    return {
      hostId: this.hostId,
      cpu: this.env.SIM_CPU,
      registration: this.registering ? this.presence.state : 'stopped',
      ...(this.presence.lastError ? { registrationError: this.presence.lastError } : {}),
      heartbeatsSent: this.presence.heartbeatsSent,
      vmCount: this.driver.listVms().length,
    };
  }

  /** Stops answering, beating and registering; running transfers are cancelled (their VMs stay on this host). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.presence.stop();
    for (const s of this.subs) s.unsubscribe();
    await this.driver.close();
  }

  /** Resolves once the background registration ended (accepted, refused or stopped). */
  async registrationSettled(): Promise<void> {
    await this.registration;
  }

  /** HostPresence's registration, in the background: a refusal is logged, never thrown, and the host keeps serving. */
  private async registerInBackground(gate?: Gate): Promise<void> {
    const register = () => this.presence.register();
    if ((await (gate ? gate.run(register) : register())) === 'refused') {
      // e.g. the host's CPU lacks the cluster's mode: retrying changes nothing
      this.log.error(`inventory refused host ${this.hostId}: ${this.presence.lastError}. It keeps answering on its subjects but is not in the inventory.`);
    }
  }
}

/**
 * Many simulated hosts in one process, for scale tests and demos: each one an agent as far as the
 * rest of flexmig can tell (own host id, subjects, heartbeats, registration), sharing one NATS
 * connection and one event loop. NATS permissions per host cannot apply to a shared connection; a
 * fleet is a simulator, not a deployment.
 */
export class SimFleet {
  private constructor(
    readonly hosts: readonly FleetHost[],
    private readonly bus: NatsBus,
    private readonly ownsBus: boolean,
    private readonly log: Logger,
  ) {}

  /** Starts every host: subjects are listened on before this resolves; registration continues in the background. */
  static async start(o: SimFleetOptions): Promise<SimFleet> {
    const log = new Logger('fleet');
    const ids = fleetHostIds(o.hostPrefix, o.size);
    if (o.cpus.length === 0) throw new RangeError('a fleet needs at least one CPU generation (FLEET_CPUS)');
    const cpus = new Map(o.cpus.map((name) => [name, simulatedHostCpu(name)] as const)); // throws UNKNOWN_CPU_MODEL early
    if (!o.bus && !o.credsFile) warnAnonymous(log);
    const bus =
      o.bus ??
      (await NatsBus.connect({
        url: o.natsUrl,
        prefix: o.subjectPrefix,
        name: `agent-fleet/${o.hostPrefix}`,
        ...(o.credsFile ? { credsFile: o.credsFile } : {}),
        ...(o.tlsCaFile ? { tlsCaFile: o.tlsCaFile } : {}),
      }));
    const hosts = ids.map((hostId, i) => {
      const cpuName = o.cpus[i % o.cpus.length]!;
      return new FleetHost(bus, hostEnv(o, hostId, cpuName), cpus.get(cpuName)!, o.heartbeatIntervalMs, o.clock);
    });
    const registrations = new Gate(o.registrationsInFlight ?? defaultRegistrationsInFlight);
    for (const h of hosts) h.start({ register: o.register !== false, registrations });
    // the subscriptions exist once the server has seen them: a request right after start() is answered
    await bus.nc.flush();
    log.log(
      `${hosts.length} simulated hosts ${ids[0]}…${ids.at(-1)} listen on ${o.subjectPrefix}.agent.<hostId>.> (CPUs ${o.cpus.join(', ')}, time scale ${o.sim.timeScale})`,
    );
    return new SimFleet(hosts, bus, !o.bus, log);
  }

  host(hostId: string): FleetHost | undefined {
    return this.hosts.find((h) => h.hostId === hostId);
  }

  status(): FleetHostStatus[] {
    return this.hosts.map((h) => h.status());
  }

  /** Resolves once every host's registration ended (accepted, refused, or the fleet stopped). */
  async registrationsSettled(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.registrationSettled()));
  }

  /** Stops every host, then closes the connection if the fleet opened it. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.stop()));
    if (this.ownsBus) await this.bus.close();
    await this.registrationsSettled();
    this.log.log(`${this.hosts.length} simulated hosts stopped`);
  }
}

/** `<prefix>-001` … : zero-padded to at least three digits so ids sort like numbers. */
export function fleetHostIds(prefix: string, size: number): string[] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`a fleet has at least one host, not ${size}`);
  const width = Math.max(3, String(size).length);
  return Array.from({ length: size }, (_, i) => HostIdSchema.parse(`${prefix}-${String(i + 1).padStart(width, '0')}`));
}

const connectionDefaults = CommonEnvSchema.pick({ EVENTS_STREAM_REPLICAS: true, EVENTS_MAX_AGE: true, EVENTS_MAX_BYTES: true, NATS_PING_INTERVAL_MS: true }).parse({});

/** The environment one host of the fleet would have as a single agent (AgentEnv), so the agent's classes serve it unchanged. */
function hostEnv(o: SimFleetOptions, hostId: string, cpu: string): AgentEnv {
  return {
    NATS_URL: o.natsUrl,
    SUBJECT_PREFIX: o.subjectPrefix,
    LOG_LEVEL: o.logLevel ?? 'log',
    // the events stream's defaults (the fleet never creates the stream: the services do) and the pings' (the fleet's one connection pings)
    ...connectionDefaults,
    HOST_ID: hostId,
    ...(o.clusterId ? { CLUSTER_ID: o.clusterId } : {}),
    CLUSTER_NAME: o.clusterName,
    DRIVER: 'sim',
    PORT: 3010, // unused: a fleet host has no HTTP endpoint of its own
    HEARTBEAT_INTERVAL_MS: o.heartbeatIntervalMs,
    AGENT_VM_REPORT_EVERY_BEATS: defaultVmReportEveryBeats,
    MIGRATION_ADDRESS: `${hostId}.sim:49152`,
    SIM_CPU: cpu,
    SIM_MEMORY_MIB: o.sim.memoryMiB,
    SIM_VCPUS: o.sim.vcpus,
    SIM_BANDWIDTH_MIBPS: o.sim.bandwidthMiBps,
    SIM_STEP_LATENCY_MS: 0,
    SIM_SWITCHOVER: o.sim.switchover ?? 'steps',
    SIM_TIME_SCALE: o.sim.timeScale,
    SIM_DIRTY_RATE_MIBPS: o.sim.dirtyRateMiBps,
    SIM_WORKING_SET_MIB: o.sim.workingSetMiB,
  };
}

