import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { freePort } from './processes';
import { waitFor } from './infra';
import { type Launched, launch } from './launcher.cjs';
import { sleep } from '@flexmig/timing';

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
  port = 0;

  /** `listen`: the address to bind (127.0.0.1; 0.0.0.0 to be reachable from the test's network namespaces). */
  constructor(private readonly listen = '127.0.0.1') {}

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
    this.server = launch('nats-server', ['-js', '-a', this.listen, '-p', String(this.port), '-sd', this.storeDir]);
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

  constructor() {
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
    }
    this.run('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.dataDir, 'server.log'), '-w', '-t', '30', '-o', `-p ${this.port} -k ${this.dataDir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
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


