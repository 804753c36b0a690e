/**
 * One QEMU process: launch (detached, so a restarted agent finds it still running), attach to one the
 * agent started before, QMP connection, quit / kill and wait for the exit. Output goes to a log file
 * (never a pipe: a pipe would break when the agent restarts).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Socket } from 'node:net';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { connectUnix } from './fd-passing';
import { QmpClient } from './qmp-client';

/** Waits for `p` at most `ms` (no timer left behind either way). */
export async function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  const done = new AbortController();
  try {
    await Promise.race([p, sleep(ms, done.signal)]);
  } finally {
    done.abort();
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // a zombie (exited, not yet reaped) is not alive
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** True if `pid` is a live QEMU whose command line names `qmpSocket` (guards against pid reuse). */
export function isOurQemu(pid: number, qmpSocket: string): boolean {
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.includes(qmpSocket));
  } catch {
    return false;
  }
}

/** The process runs as this agent's user (never another user's, whatever its command line says). */
function ownedByUs(pid: string): boolean {
  try {
    return statSync(`/proc/${pid}`).uid === process.getuid?.();
  } catch {
    return false;
  }
}

/**
 * The live processes of this agent's user whose QMP socket (`-qmp unix:<dir>/<name>,…`) is in `dir` exactly, with that name:
 * the QEMUs started for this run dir, whether or not a state file names them.
 */
export function qemusWithQmpIn(dir: string): { pid: number; socketName: string }[] {
  const found: { pid: number; socketName: string }[] = [];
  const want = dirname(join(dir, 'x')); // as the sockets are named: normalized, no trailing slash
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // ended meanwhile, or not ours to read
    }
    const qmp = argv[argv.indexOf('-qmp') + 1];
    if (argv.indexOf('-qmp') < 0 || !qmp?.startsWith('unix:')) continue;
    const path = qmp.slice('unix:'.length).split(',')[0]!;
    if (dirname(path) === want && ownedByUs(entry) && pidAlive(Number(entry))) found.push({ pid: Number(entry), socketName: basename(path) });
  }
  return found;
}

/** A connection to the unix socket at `path`, or undefined when it is refused (or missing) now. */
function connectOnce(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const s = connectUnix(path);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', () => resolve(undefined));
  });
}

export function tail(path: string, bytes = 2000): string {
  try {
    const s = readFileSync(path, 'utf8');
    return s.slice(-bytes).trim();
  } catch {
    return '';
  }
}

export interface LaunchOptions {
  binary: string;
  args: string[];
  qmpSocket: string;
  logFile: string;
  label: string;
  startTimeoutMs?: number;
}

/** How a QEMU ended, as waitpid reports it (known only for a QEMU this agent started). */
export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The agent had asked it to end (`quit` or SIGKILL): anything else ended it. */
  asked: boolean;
}

export function describeExit(e: QemuExit | undefined): string {
  if (!e) return 'exited';
  const how = e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;
  return e.asked ? how : `${how}, unasked`;
}

export class QemuProcess {
  readonly qmp: QmpClient;
  private exitedFlag = false;
  private asked = false;
  /** Set once the QEMU this agent started has been reaped (undefined for an attached one, or while it runs). */
  exit?: QemuExit;
  readonly exited: Promise<void>;
  private markExited!: () => void;

  private constructor(
    readonly pid: number,
    readonly qmpSocket: string,
    readonly logFile: string,
    readonly label: string,
    child?: ChildProcess,
  ) {
    this.qmp = new QmpClient(qmpSocket, label, () => this.explainLoss());
    this.exited = new Promise((r) => (this.markExited = r));
    if (child) {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal, asked: this.asked };
        this.onExit();
      });
    } else {
      // not our child (the agent restarted): poll
      const t = setInterval(() => {
        if (!pidAlive(pid)) {
          clearInterval(t);
          this.onExit();
        }
      }, 200);
      t.unref();
      void this.exited.then(() => clearInterval(t));
    }
  }

  get alive(): boolean {
    return !this.exitedFlag && pidAlive(this.pid);
  }

  logTail(bytes = 1500): string {
    return tail(this.logFile, bytes);
  }

  /**
   * How this QEMU ended, with the end of its log flattened to one line: "QEMU pid N was killed by SIGKILL,
   * unasked; its log ends: …". The one text the QMP error, the registry's warning and a failed transfer
   * all give. The exit is named only once reaped (an attached QEMU's never is); the log, complete by
   * then, says the rest ("terminating on signal 15 from pid …", an assertion, "shutting down").
   */
  describeEnd(): string {
    const log = this.logTail(600).replace(/\s+/g, ' ').trim();
    const exit = this.exit ? `QEMU pid ${this.pid} ${describeExit(this.exit)}` : `QEMU pid ${this.pid} ${pidAlive(this.pid) ? 'still runs' : 'has ended'}`;
    return log ? `${exit}; its log ends: ${log}` : `${exit}; its log ${this.logFile} is empty`;
  }

  /** Why the QMP connection went away when the agent did not close it; nothing when the agent ended QEMU. */
  private explainLoss(): string {
    return this.asked ? '' : this.describeEnd();
  }

  /** Starts QEMU and connects QMP; on any failure the process is killed and the error names QEMU's own message. */
  static async launch(o: LaunchOptions): Promise<QemuProcess> {
    const fd = openSync(o.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(o.binary, [...o.args, '-qmp', `unix:${o.qmpSocket},server=on,wait=off`], { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    if (child.pid === undefined) {
      const e = await spawnError;
      throw new FlexmigError(ErrorCode.Unavailable, `cannot start ${o.binary} for ${o.label}: ${e.message}`);
    }
    child.unref();
    const p = new QemuProcess(child.pid, o.qmpSocket, o.logFile, o.label, child);
    const deadline = Date.now() + (o.startTimeoutMs ?? 10_000);
    try {
      // QEMU creates the socket file at bind() and accepts only after listen(): a connection in between
      // is refused, so try until one is accepted, and use that one (QMP serves one client at a time: a
      // probe connection closed at once could still hold the monitor when the real one arrives)
      let socket: Socket | undefined;
      while (!(socket = await connectOnce(o.qmpSocket))) {
        if (p.exitedFlag || !pidAlive(p.pid)) {
          await waitAtMost(p.exited, 200);
          throw new FlexmigError(ErrorCode.Unavailable, `QEMU for ${o.label} exited at start: ${p.logTail() || `exit code ${child.exitCode}`}`, {
            exitCode: child.exitCode,
          });
        }
        if (Date.now() > deadline) throw new FlexmigError(ErrorCode.Timeout, `QEMU for ${o.label} did not open its QMP socket within ${o.startTimeoutMs ?? 10_000} ms`);
        await sleep(5);
      }
      // a QEMU that preallocates its memory greets at once but answers qmp_capabilities only when done
      await p.qmp.connect(undefined, socket, Math.max(30_000, o.startTimeoutMs ?? 0));
      return p;
    } catch (e) {
      await p.kill();
      throw e;
    }
  }

  /** Attaches to a QEMU an earlier agent started (checked to be ours and alive). */
  static async attach(pid: number, qmpSocket: string, logFile: string, label: string): Promise<QemuProcess> {
    if (!isOurQemu(pid, qmpSocket)) throw new FlexmigError(ErrorCode.NotFound, `QEMU pid ${pid} of ${label} is not running`);
    const p = new QemuProcess(pid, qmpSocket, logFile, label);
    await p.qmp.connect();
    return p;
  }

  /** `quit` over QMP, then SIGKILL if it is not gone within `graceMs`. Waits for the exit. */
  async quit(graceMs = 3_000): Promise<void> {
    this.asked = true;
    if (!this.alive) return this.finish();
    if (this.qmp.isOpen) await this.qmp.execute('quit', undefined, graceMs).catch(() => undefined);
    await waitAtMost(this.exited, graceMs);
    await this.kill();
  }

  /** SIGKILL and wait for the exit (idempotent). */
  async kill(): Promise<void> {
    this.asked = true;
    if (this.alive) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitAtMost(this.exited, 5_000);
    if (pidAlive(this.pid)) throw new FlexmigError(ErrorCode.Internal, `QEMU pid ${this.pid} of ${this.label} survived SIGKILL`);
    this.finish();
  }

  private finish(): void {
    this.qmp.close();
    this.onExit();
  }

  private onExit(): void {
    if (this.exitedFlag) return;
    this.exitedFlag = true;
    // the exit can be reaped before the socket reports its close: the connection then ends here, saying why
    if (this.asked) this.qmp.close();
    else this.qmp.close(`the QEMU ended; ${this.describeEnd()}`);
    this.markExited();
  }
}
