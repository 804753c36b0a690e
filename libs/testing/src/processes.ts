import path from 'node:path';
// the launcher the scripts and benchmarks use too (plain CommonJS: see launcher.cjs)
import { type Launched, launchService } from './launcher.cjs';
import { testAuthEnv } from './auth';

export const repoRoot = path.resolve(__dirname, '../../..');

/** A built flexmig service (`node dist/apps/<app>/main.js`) run as a real process. */
export class ServiceProcess {
  private launched?: Launched;

  constructor(
    readonly app: string,
    readonly env: Record<string, string>,
    readonly port?: number,
    readonly label = app,
    /** A command the service runs under, e.g. `['ip', 'netns', 'exec', 'ns1']` (it must exec, keeping the pid). */
    readonly launcher: string[] = [],
  ) {}

  get pid(): number | undefined {
    return this.launched?.pid;
  }

  /** The last lines the service wrote (stdout and stderr). */
  get output(): string[] {
    return this.launched?.output ?? [];
  }

  async start(): Promise<this> {
    // tokens are checked by default: the test secret, unless the test configures auth itself
    const auth = ['AUTH', 'AUTH_JWT_SECRET_FILE', 'AUTH_OIDC_ISSUER'].some((k) => k in this.env) ? {} : testAuthEnv();
    this.launched = launchService(this.app, { name: this.label, env: { ...auth, ...this.env }, via: this.launcher });
    if (this.port) await this.launched.waitReady(this.port);
    return this;
  }

  /** Resolves when the process ends by itself or is stopped: its exit code or signal. */
  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.launched) throw new Error(`${this.label} was not started`);
    return this.launched.exited;
  }

  tail(lines = 30): string {
    return this.launched?.tail(lines) ?? '';
  }

  /** SIGTERM and wait; SIGKILL if it does not stop in time. */
  async stop(timeoutMs = 5_000): Promise<void> {
    await this.launched?.stop(timeoutMs);
  }

  /** kill -9: no chance to clean up. */
  async kill(): Promise<void> {
    await this.launched?.kill();
  }
}

export { appEntry, freePort, launch, launchService, type Launched } from './launcher.cjs';
