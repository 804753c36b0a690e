import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { freePort } from './processes';
import { waitFor } from './infra';
import { type Launched, launch } from './launcher.cjs';
import { sleep } from '@flexmig/timing';
import { authFiles, initAuthDir, issueAgent, issueNamedUser, type ServiceRole } from '@flexmig/nats-auth';

export interface NatsServerOptions {
  /** The address to bind (127.0.0.1; 0.0.0.0 to be reachable from the test's network namespaces). */
  listen?: string;
  /**
   * Run in operator mode with the configuration `flexmig auth init` writes, for this subject prefix:
   * every client then needs an identity (creds(), agentCreds(), observerCreds).
   */
  auth?: { prefix: string };
  /** Serve TLS with the generated certificate (needs auth); clients verify it with tlsCa. */
  tls?: boolean;
}

/** The test's own identity that may read and publish everything: to look around, never to stand in for a service. */
const observer = 'test-observer';

const portOpen = (port: number, host = '127.0.0.1') =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

/**
 * A nats-server (JetStream, file store) of the test's own, on its own port, that the test can stop and
 * start again on the same port and store: what "NATS restarted mid-migration" needs.
 */
export class NatsServerProcess {
  private server?: Launched;
  readonly storeDir = mkdtempSync(path.join(tmpdir(), 'flexmig-nats-'));
  /** The auth directory (`flexmig auth init`) when run with auth; made at the first start. */
  readonly authDir?: string;
  port = 0;
  private readonly listen: string;
  private authReady = false;
  private readonly options: NatsServerOptions;

  constructor(options: string | NatsServerOptions = {}) {
    const o = typeof options === 'string' ? { listen: options } : options;
    this.listen = o.listen ?? '127.0.0.1';
    this.options = o;
    if (o.auth) this.authDir = path.join(this.storeDir, 'auth');
  }

  /** The credentials file of a service role (inventory, scheduler, cpu-compat, subscriber). */
  creds(role: ServiceRole | 'fleet' | typeof observer): string {
    return path.join(this.requireAuth(), authFiles.creds(role));
  }

  /** Issues (again) a host's agent identity while the server runs, as `flexmig auth agent` does. */
  async agentCreds(hostId: string): Promise<string> {
    return (await issueAgent(this.requireAuth(), hostId)).creds;
  }

  get observerCreds(): string {
    return this.creds(observer);
  }

  /** The CA that signed the server's TLS certificate. */
  get tlsCa(): string {
    return path.join(this.requireAuth(), authFiles.caCert);
  }

  /** What a service needs in its environment to connect as `role` (nothing without auth). */
  serviceEnv(role: ServiceRole): Record<string, string> {
    if (!this.authDir) return {};
    return { NATS_CREDS: this.creds(role), ...(this.options.tls ? { NATS_TLS_CA: this.tlsCa } : {}) };
  }

  /** An agent's environment entries: its own identity, issued now. */
  async agentEnv(hostId: string): Promise<Record<string, string>> {
    if (!this.authDir) return {};
    return { NATS_CREDS: await this.agentCreds(hostId), ...(this.options.tls ? { NATS_TLS_CA: this.tlsCa } : {}) };
  }

  /** Applies a changed configuration (a revocation) without a restart: `nats-server --signal reload`. */
  reload(): void {
    if (!this.server?.pid) throw new Error('nats-server is not running');
    process.kill(this.server.pid, 'SIGHUP');
  }

  private requireAuth(): string {
    if (!this.authDir) throw new Error('this NATS server runs without auth (new NatsServerProcess({ auth: { prefix } }))');
    return this.authDir;
  }

  private async prepareAuth(): Promise<string[]> {
    const o = this.options;
    if (!o.auth || !this.authDir) return [];
    if (!this.authReady) {
      await initAuthDir(this.authDir, { prefix: o.auth.prefix, tls: o.tls === true });
      await issueNamedUser(this.authDir, observer, { pub: { allow: ['>'] }, sub: { allow: ['>'] }, resp: { max: 1 } });
      this.authReady = true;
    }
    return ['-c', path.join(this.authDir, o.tls ? authFiles.tlsServerConfig : authFiles.serverConfig)];
  }

  private get host(): string {
    return this.listen === '0.0.0.0' ? '127.0.0.1' : this.listen;
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  static available(): boolean {
    try {
      execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    const config = await this.prepareAuth();
    this.server = launch('nats-server', [...config, '-js', '-a', this.listen, '-p', String(this.port), '-sd', this.storeDir]);
    await waitFor(`nats-server on ${this.host}:${this.port}`, () => portOpen(this.port, this.host), { timeoutMs: 10_000 });
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server?.running) return;
    await this.server.stop();
    await waitFor(`port ${this.port} to close`, async () => !(await portOpen(this.port, this.host)), { timeoutMs: 10_000 });
  }

  async restart(downForMs = 0): Promise<void> {
    await this.stop();
    if (downForMs) await sleep(downForMs);
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

export interface PostgresServerOptions {
  /**
   * Serve TLS with this certificate and key (copied into the data directory, as PostgreSQL wants its key
   * private to it). The server then listens on `localhost` (every loopback address it resolves to), so a
   * certificate for the name `localhost` can be checked with `sslmode=verify-full`.
   */
  tls?: { certFile: string; keyFile: string };
}

/**
 * A PostgreSQL server of the test's own (initdb into a temporary directory, trust auth, its own port),
 * that the test can stop and start again: what "PostgreSQL restarted mid-migration" needs. Run as root,
 * the server runs as the `postgres` user (PostgreSQL refuses root).
 */
export class PostgresServerProcess {
  readonly dataDir: string;
  port = 0;
  private readonly bin: string;
  private readonly asPostgres = userInfo().uid === 0;

  constructor(private readonly options: PostgresServerOptions = {}) {
    const root = '/usr/lib/postgresql';
    const version = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a))[0] : undefined;
    this.bin = version ? path.join(root, version, 'bin') : '';
    this.dataDir = mkdtempSync(path.join(tmpdir(), 'flexmig-pg-'));
  }

  static available(): boolean {
    return existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').length > 0;
  }

  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private run(tool: string, args: string[]): void {
    const cmd = path.join(this.bin, tool);
    if (this.asPostgres) execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'ignore' });
    else execFileSync(cmd, args, { stdio: 'ignore' });
  }

  async start(): Promise<this> {
    if (!this.port) {
      this.port = await freePort();
      if (this.asPostgres) execFileSync('chown', ['-R', 'postgres:postgres', this.dataDir]);
      this.run('initdb', ['-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
      if (this.options.tls) {
        copyFileSync(this.options.tls.certFile, path.join(this.dataDir, 'server.crt'));
        copyFileSync(this.options.tls.keyFile, path.join(this.dataDir, 'server.key'));
        if (this.asPostgres) execFileSync('chown', ['postgres:postgres', path.join(this.dataDir, 'server.crt'), path.join(this.dataDir, 'server.key')]);
      }
    }
    const tls = this.options.tls ? ' -c ssl=on -c listen_addresses=localhost' : ' -c listen_addresses=127.0.0.1';
    this.run('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.dataDir, 'server.log'), '-w', '-t', '30', '-o', `-p ${this.port} -k ${this.dataDir}${tls} -c fsync=off`, 'start']);
    return this;
  }

  /** `fast` closes connections cleanly; `immediate` is a crash (recovery on the next start). */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    try {
      this.run('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '30', 'stop']);
    } catch {
      // not running
    }
  }

  async restart(downForMs = 0, mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await this.stop(mode);
    if (downForMs) await sleep(downForMs);
    await this.start();
  }

  async destroy(): Promise<void> {
    await this.stop('immediate');
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}


