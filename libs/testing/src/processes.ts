import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from './infra';

export const repoRoot = path.resolve(__dirname, '../../..');

/** A built flexmig service (`node dist/apps/<app>/main.js`) run as a real process. */
export class ServiceProcess {
  private child?: ChildProcess;
  readonly output: string[] = [];
  private exited?: Promise<number | null>;

  constructor(
    readonly app: string,
    readonly env: Record<string, string>,
    readonly port?: number,
    readonly label = app,
    /** A command the service runs under, e.g. `['ip', 'netns', 'exec', 'ns1']` (it must exec, keeping the pid). */
    readonly launcher: string[] = [],
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<this> {
    const main = path.join(repoRoot, 'dist/apps', this.app, 'main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
    const [cmd, ...args] = [...this.launcher, process.execPath, '--enable-source-maps', main];
    this.child = spawn(cmd, args, {
      cwd: repoRoot,
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) this.output.push(line);
      if (this.output.length > 2000) this.output.splice(0, this.output.length - 2000);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child!.once('exit', (code) => resolve(code)));
    if (this.port) {
      await waitFor(`${this.label} to be ready on port ${this.port}`, async () => {
        if (this.child!.exitCode !== null) throw new Error(`${this.label} exited: ${this.tail()}`);
        const res = await fetch(`http://127.0.0.1:${this.port}/health/ready`).catch(() => undefined);
        return res?.ok;
      }, { timeoutMs: 30_000, intervalMs: 100 });
    }
    return this;
  }

  tail(lines = 30): string {
    return this.output.slice(-lines).join('\n');
  }

  /** SIGTERM and wait; SIGKILL if it does not stop in time. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(t);
  }

  /** kill -9: no chance to clean up. */
  async kill(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}
