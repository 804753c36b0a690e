import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type HostNetwork, NatsCluster, NatsInterceptor, NatsServerProcess, ServiceProcess, TcpProxy } from '@flexmig/testing';
import { Harness, type HarnessOptions } from '@flexmig/testing';

export type Driver = 'sim' | 'qemu';

export interface FaultHarnessOptions extends HarnessOptions {
  driver: Driver;
  /** A host whose agent keeps its state somewhere else (a small tmpfs, to fill it). */
  stateDirOf?: Record<string, string>;
  /** Each agent on a host of its own (a network namespace), so that the network between them can split. */
  network?: HostNetwork;
  /** NATS as a cluster of three servers (NatsCluster) instead of one. */
  natsCluster?: boolean;
  /** Every scheduler replica reaches NATS through a NatsInterceptor of its own (`natsInterceptor(name)`). */
  interceptSchedulerNats?: boolean;
}

/**
 * The Harness's NATS server, or another: agents in namespaces reach NATS on the bridge (the server then
 * listens on every address, auth as before); a cluster of three for the replicated events stream.
 */
function natsFor(h: Harness): NatsServerProcess {
  const o = h.o as FaultHarnessOptions;
  if (!o.network && !o.natsCluster) return h.nats;
  rmSync(h.nats.storeDir, { recursive: true, force: true }); // the Harness's own, never started
  return o.natsCluster ? new NatsCluster({ auth: { prefix: h.prefix } }) : new NatsServerProcess({ listen: '0.0.0.0', auth: { prefix: h.prefix } });
}

/**
 * The e2e Harness with what the fault matrix needs besides:
 * - agents on the qemu driver (TCG, each host with its own run and state directory, migration address
 *   and port range), and a state directory of the scenario's choosing per host;
 * - agents in network namespaces of their own (`network`), NATS then listening on the bridge too;
 * - every scheduler replica reaching PostgreSQL through a TcpProxy of its own (`dbProxy(name)`), so that a
 *   scenario can cut one replica off from PostgreSQL and not from NATS;
 * - with `interceptSchedulerNats`, every scheduler replica reaching NATS through a NatsInterceptor of its
 *   own, so that a scenario can delay and repeat the messages it sends and receives.
 */
export class FaultHarness extends Harness {
  override readonly nats: NatsServerProcess = natsFor(this);
  private readonly dbProxies = new Map<string, TcpProxy>();
  private readonly natsInterceptors = new Map<string, NatsInterceptor>();

  constructor(readonly fo: FaultHarnessOptions) {
    super(fo);
  }

  get driver(): Driver {
    return this.fo.driver;
  }

  /** Where a host's agent keeps its state (and, on qemu, its QEMUs' sockets and state files). */
  hostDir(hostId: string): string {
    return this.fo.stateDirOf?.[hostId] ?? path.join(this.stateDir, hostId);
  }

  /** The run directory of a host's QEMUs (qemu driver). */
  qemuRunDir(hostId: string): string {
    return path.join(this.stateDir, `${hostId}-run`);
  }

  /** The QEMU processes this harness's agents started (their command lines name its directories). */
  qemuProcesses(): { pid: number; hostId?: string; cmdline: string; state: string }[] {
    const found: { pid: number; hostId?: string; cmdline: string; state: string }[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmdline: string;
      let state: string;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        // the state letter follows the parenthesised command name: R running, S sleeping, T stopped, Z zombie
        state = /\)\s+(\S)/.exec(readFileSync(`/proc/${entry}/stat`, 'utf8'))?.[1] ?? '?';
      } catch {
        continue; // ended meanwhile
      }
      if (!cmdline.includes('qemu-system') || !cmdline.includes(this.stateDir) || state === 'Z') continue;
      found.push({ pid: Number(entry), hostId: this.o.hosts.find((x) => cmdline.includes(this.qemuRunDir(x.id)))?.id, cmdline, state });
    }
    return found;
  }

  /** The proxy between a scheduler replica and PostgreSQL. */
  dbProxy(name: string): TcpProxy {
    const p = this.dbProxies.get(name);
    if (!p) throw new Error(`no scheduler named ${name} was started (started: ${[...this.dbProxies.keys()].join(', ')})`);
    return p;
  }

  /** The NATS interceptor between a scheduler replica and NATS (`interceptSchedulerNats`). */
  natsInterceptor(name: string): NatsInterceptor {
    const p = this.natsInterceptors.get(name);
    if (!p) throw new Error(`no scheduler named ${name} reaches NATS through an interceptor (those that do: ${[...this.natsInterceptors.keys()].join(', ') || 'none'})`);
    return p;
  }

  override async start(): Promise<this> {
    this.fo.network?.create();
    return super.start();
  }

  override async startService(name: string, app: string, env: Record<string, string>): Promise<ServiceProcess> {
    if (app !== 'scheduler') return super.startService(name, app, env);
    let proxy = this.dbProxies.get(name);
    if (!proxy) {
      proxy = await new TcpProxy(this.pg.port).start();
      this.dbProxies.set(name, proxy);
    }
    let nats: NatsInterceptor | undefined;
    if (this.fo.interceptSchedulerNats) {
      nats = this.natsInterceptors.get(name) ?? (await new NatsInterceptor(this.nats.port).start());
      this.natsInterceptors.set(name, nats);
    }
    return super.startService(name, app, {
      ...env,
      DATABASE_URL: this.pg.url('flexmig').replace(`127.0.0.1:${this.pg.port}`, proxy.url),
      ...(nats ? { NATS_URL: nats.url } : {}),
    });
  }

  override async startAgent(hostId: string): Promise<ServiceProcess> {
    const i = this.o.hosts.findIndex((x) => x.id === hostId);
    const h = this.o.hosts[i];
    const dir = this.hostDir(hostId);
    const net = this.fo.network?.host(hostId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (this.driver === 'qemu') mkdirSync(this.qemuRunDir(hostId), { recursive: true, mode: 0o700 });
    const qemu: Record<string, string> =
      this.driver === 'qemu'
        ? {
            DRIVER: 'qemu',
            QEMU_ACCEL: 'tcg',
            QEMU_RUN_DIR: this.qemuRunDir(hostId),
            MIGRATION_ADDRESS: `${net?.ip ?? '127.0.0.1'}:${49_100 + i * 100}`,
            QEMU_MIGRATION_PORT_RANGE: `${49_101 + i * 100}-${49_199 + i * 100}`,
            QEMU_GUEST_DIRTY_RATE_MIBPS: '32',
            QEMU_GUEST_WORKING_SET_MIB: '32',
            // every scenario leaves its VM running: a host of this 2-core machine would admit two
            QEMU_HOST_VCPUS: '32',
          }
        : { SIM_CPU: h.cpu, SIM_VCPUS: '512' };
    const env = {
      ...(await this.nats.agentEnv(h.id)),
      HOST_ID: h.id,
      CLUSTER_NAME: 'faults',
      AGENT_STATE_DIR: dir,
      HEARTBEAT_INTERVAL_MS: '500',
      ...qemu,
      ...this.o.agent,
    };
    if (!this.fo.network) return this.startService(hostId, 'agent', env);
    // inside its namespace: NATS on the bridge, and no readiness probe from here (inventory says when it is up)
    const p = await new ServiceProcess('agent', { ...this.common, ...env, NATS_URL: `nats://${this.fo.network.bridgeIp}:${this.nats.port}`, PORT: '3010' }, undefined, hostId, this.fo.network.exec(hostId)).start();
    this.procs.set(hostId, p);
    return p;
  }

  /** kill -9, then the same process again: same settings, same namespace. */
  override async crashAndRestart(name: string, downForMs = 0): Promise<void> {
    const p = this.procs.get(name)!;
    if (!p.launcher.length) return super.crashAndRestart(name, downForMs);
    await p.kill();
    if (downForMs) await new Promise((r) => setTimeout(r, downForMs));
    this.procs.set(name, await new ServiceProcess(p.app, p.env, p.port, name, p.launcher).start());
  }

  override async stop(): Promise<void> {
    await super.stop();
    // agents leave their QEMUs running when they stop (by design): the harness's end is theirs too
    for (const q of this.qemuProcesses()) process.kill(q.pid, 'SIGKILL');
    for (const p of this.dbProxies.values()) await p.stop();
    for (const p of this.natsInterceptors.values()) await p.stop();
    this.fo.network?.destroy();
  }
}
