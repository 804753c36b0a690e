/**
 * A small QMP client: one unix socket, JSON lines. Reads the greeting, negotiates `qmp_capabilities`,
 * correlates commands and responses by `id`, and hands asynchronous events to listeners. When the socket
 * goes away (QEMU exited or was killed) every pending command fails with a clear error and `closed`
 * resolves; nothing is retried behind the caller's back.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { canPassFds, connectUnix, writeWithFd } from './fd-passing';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** QEMU's own timestamp of the event (host wall clock). */
  at: Date;
}

/** One line from QEMU: the greeting (`QMP`), an asynchronous event, or the reply to a command (by `id`). */
interface QmpMessage {
  QMP?: unknown;
  event?: unknown;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
  id?: string;
  return?: unknown;
  error?: { class?: string; desc?: string };
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export class QmpError extends FlexmigError {
  constructor(
    readonly command: string,
    readonly qmpClass: string,
    readonly desc: string,
    label: string,
  ) {
    super(ErrorCode.AgentFailed, `QMP ${command} failed on ${label}: ${desc} (${qmpClass})`, { command, qmpClass, desc }, false);
  }
}

export class QmpClient extends EventEmitter {
  private socket?: Socket;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedReason?: string;
  private resolveClosed!: () => void;
  /** Resolves once the connection is gone, for whatever reason. */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));
  private greetingWaiter?: { resolve: () => void; reject: (e: Error) => void };

  constructor(
    readonly socketPath: string,
    /** Names the VM in errors ("QMP migrate failed on VM …"). */
    readonly label: string,
    /** Says why the socket went away when nobody closed it (the owner knows: QEMU's exit and its log). */
    private readonly explainLoss: () => string = () => '',
  ) {
    super();
  }

  get isOpen(): boolean {
    return this.socket !== undefined && this.closedReason === undefined;
  }

  /** Connects, waits for the greeting and leaves capability-negotiation mode. */
  /**
   * `connected`: a socket already connected to the QMP socket, to use instead of opening one;
   * `capabilitiesTimeoutMs`: how long `qmp_capabilities` may take (QEMU answers it from its main loop).
   */
  async connect(timeoutMs = 5_000, connected?: Socket, capabilitiesTimeoutMs = 30_000): Promise<void> {
    const socket = connected ?? connectUnix(this.socketPath);
    this.socket = socket;
    socket.setEncoding('utf8');
    const greeted = new Promise<void>((resolve, reject) => (this.greetingWaiter = { resolve, reject }));
    const timer = setTimeout(() => this.fail(`no QMP greeting within ${timeoutMs} ms`), timeoutMs);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.lost(`QMP socket error: ${e.message}`));
    socket.on('close', () => this.lost('the QMP socket closed (QEMU exited?)'));
    try {
      await greeted;
    } finally {
      clearTimeout(timer);
    }
    await this.execute('qmp_capabilities', undefined, capabilitiesTimeoutMs);
  }

  /** Runs one command; rejects with QmpError on a QMP error reply, FlexmigError(UNAVAILABLE) if the socket went away. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 30_000): Promise<T> {
    return this.send(command, args, timeoutMs, (line) => this.socket!.write(line));
  }

  /** Whether this connection can hand QEMU a file descriptor (fd-passing.ts). */
  get passesFds(): boolean {
    return canPassFds(this.socket);
  }

  /**
   * Runs one command with the descriptor of `carried` attached (`getfd`, `add-fd`): QEMU keeps its own copy,
   * so the caller may close `carried` once this resolves. Only where `passesFds`.
   */
  executeWithFd<T = unknown>(command: string, args: Record<string, unknown>, carried: Socket, timeoutMs = 30_000): Promise<T> {
    return this.send(command, args, timeoutMs, (line) => writeWithFd(this.socket!, line, carried));
  }

  private send<T>(command: string, args: Record<string, unknown> | undefined, timeoutMs: number, write: (line: string) => void): Promise<T> {
    if (this.closedReason !== undefined || !this.socket) {
      return Promise.reject(this.gone(command));
    }
    const id = `c${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new FlexmigError(ErrorCode.Timeout, `QMP ${command} on ${this.label} got no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      const msg = JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id });
      try {
        write(`${msg}\n`);
      } catch (e) {
        this.pending.delete(id);
        if (p.timer) clearTimeout(p.timer);
        reject(e);
      }
    });
  }

  /** Waits for the first event matching `pred` (events that arrived earlier are not seen). */
  waitEvent(pred: (e: QmpEvent) => boolean, timeoutMs: number, what: string): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (!pred(e)) return;
        cleanup();
        resolve(e);
      };
      const onClose = () => {
        cleanup();
        reject(this.gone(`waiting for ${what}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new FlexmigError(ErrorCode.Timeout, `${this.label}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  /** Ends the connection; `reason` is what later calls are told (by default, that the agent closed it). */
  close(reason = 'closed by the agent'): void {
    this.fail(reason);
  }

  private gone(command: string): FlexmigError {
    return new FlexmigError(ErrorCode.Unavailable, `QMP ${command} on ${this.label}: ${this.closedReason ?? 'not connected'}`, { command }, false);
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: QmpMessage;
    try {
      msg = JSON.parse(line);
    } catch {
      return; // QMP only sends JSON; a torn line is ignored rather than crashing the agent
    }
    if (msg.QMP) {
      this.greetingWaiter?.resolve();
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = msg.timestamp;
      const at = ts && ts.seconds > 0 ? new Date(ts.seconds * 1000 + Math.floor(ts.microseconds / 1000)) : new Date();
      this.emit('event', { event: msg.event, data: msg.data, at } satisfies QmpEvent);
      return;
    }
    const id = msg.id;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if ('error' in msg) p.reject(new QmpError(p.command, msg.error?.class ?? 'GenericError', msg.error?.desc ?? 'unknown error', this.label));
    else p.resolve(msg.return);
  }

  /** The socket went away without `close()`: the reason carries what the owner knows of why. */
  private lost(reason: string): void {
    if (this.closedReason !== undefined) return;
    const why = this.explainLoss();
    this.fail(why ? `${reason}; ${why}` : reason);
  }

  private fail(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.greetingWaiter?.reject(new FlexmigError(ErrorCode.Unavailable, `QMP ${this.socketPath} (${this.label}): ${reason}`));
    this.greetingWaiter = undefined;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      p.reject(this.gone(p.command));
    }
    this.socket?.destroy();
    this.emit('close', reason);
    this.resolveClosed();
  }
}
