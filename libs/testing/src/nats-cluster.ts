import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { authFiles } from '@flexmig/nats-auth';
import { freePort } from './processes';
import { waitFor } from './infra';
import { type Launched, launch } from './launcher.cjs';
import { NatsServerProcess, type NatsServerOptions } from './servers';

interface Peer {
  name: string;
  port: number;
  clusterPort: number;
  storeDir: string;
  server?: Launched;
}

/**
 * Three nats-servers in one JetStream cluster, on the loopback: this one (`n1`, whose URL the services get:
 * they learn the others from it) and two peers with the same operator-mode configuration. A peer can be
 * killed with kill -9 (`kill`), to see that a stream with 3 replicas loses nothing.
 */
export class NatsCluster extends NatsServerProcess {
  readonly name = 'n1';
  readonly peers: Peer[] = ['n2', 'n3'].map((name) => ({ name, port: 0, clusterPort: 0, storeDir: mkdtempSync(path.join(tmpdir(), `flexmig-nats-${name}-`)) }));
  private clusterPort = 0;
  /** Filled at start, once the ports are known (the options keep a reference to it). */
  private readonly clusterArgs: string[];

  constructor(options: Omit<NatsServerOptions, 'args' | 'tls'> & { auth: { prefix: string } }) {
    const clusterArgs: string[] = [];
    super({ ...options, args: clusterArgs });
    this.clusterArgs = clusterArgs;
  }

  private argsOf(name: string, clusterPort: number): string[] {
    const routes = [this.clusterPort, ...this.peers.map((p) => p.clusterPort)].filter((p) => p !== clusterPort).map((p) => `nats://127.0.0.1:${p}`);
    return ['--server_name', name, '--cluster_name', 'flexmig-faults', '--cluster', `nats://127.0.0.1:${clusterPort}`, '--routes', routes.join(',')];
  }

  override async start(): Promise<this> {
    if (!this.clusterPort) {
      this.clusterPort = await freePort();
      for (const p of this.peers) Object.assign(p, { port: await freePort(), clusterPort: await freePort() });
      this.clusterArgs.push(...this.argsOf(this.name, this.clusterPort));
    }
    await super.start();
    const config = path.join(this.authDir!, authFiles.serverConfig);
    for (const p of this.peers) {
      if (p.server?.running) continue;
      p.server = launch('nats-server', ['-c', config, ...this.argsOf(p.name, p.clusterPort), '-js', '-a', '127.0.0.1', '-p', String(p.port), '-sd', p.storeDir], { name: `nats ${p.name}` });
    }
    const nc = await connect({ servers: this.url, authenticator: credsAuthenticator(readFileSync(this.observerCreds)) });
    try {
      await waitFor('the JetStream cluster to elect its meta leader', async () => Boolean(await (await jetstreamManager(nc)).getAccountInfo().catch(() => undefined)), { timeoutMs: 60_000, intervalMs: 500 });
    } finally {
      await nc.close();
    }
    return this;
  }

  /** kill -9 of a peer (n2 or n3). */
  async kill(name: string): Promise<void> {
    const p = this.peers.find((x) => x.name === name);
    if (!p) throw new Error(`no peer ${name} in this cluster (peers: ${this.peers.map((x) => x.name).join(', ')}; n1 is not killed this way)`);
    await p.server?.kill();
  }

  override async stop(): Promise<void> {
    for (const p of this.peers) await p.server?.stop();
    await super.stop();
  }

  override async destroy(): Promise<void> {
    await super.destroy();
    for (const p of this.peers) rmSync(p.storeDir, { recursive: true, force: true });
  }
}
