/**
 * A unix-socket connection that can carry a file descriptor with what it writes (SCM_RIGHTS), as QMP's
 * `getfd` takes one: the source agent hands QEMU a TCP connection it opened itself (migration-connection.ts).
 *
 * Node.js has no public API to attach a descriptor to a write. libuv does it for a pipe opened in IPC mode
 * (`uv_write2`, what child_process's channel uses), so the QMP socket is opened as such a pipe through Node's
 * own `pipe_wrap` and `stream_wrap` bindings, and a descriptor goes with one line written there. A Node.js
 * without them (`process.binding` is deprecated, in documentation only as of Node 24) gets a plain
 * connection: `canPassFds` then says no and the caller does without (the stream goes as `tcp:`, as before).
 * Reading is unchanged: QEMU sends no descriptors, and an IPC pipe reads bytes like any other.
 */
import { Socket, createConnection } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';

/** What of Node's internal stream bindings this uses: a pipe handle, its IPC type, a write request. */
interface PipeHandle {
  writeUtf8String(req: WriteRequest, text: string, sendHandle?: unknown): number;
}
interface WriteRequest {
  handle?: unknown;
  oncomplete?: (status: number) => void;
  async?: boolean;
}
interface Bindings {
  newIpcPipe(): PipeHandle;
  newWriteRequest(): WriteRequest;
}

let cached: Bindings | null | undefined;

/** Node's pipe and write-request bindings, or null where this Node.js does not expose them. */
function bindings(): Bindings | null {
  if (cached !== undefined) return cached;
  try {
    const binding = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
    const pipeWrap = binding?.('pipe_wrap') as { Pipe?: new (type: number) => PipeHandle; constants?: { IPC?: number } } | undefined;
    const streamWrap = binding?.('stream_wrap') as { WriteWrap?: new () => WriteRequest } | undefined;
    const { Pipe } = pipeWrap ?? {};
    const ipc = pipeWrap?.constants?.IPC;
    const WriteWrap = streamWrap?.WriteWrap;
    if (typeof Pipe !== 'function' || typeof ipc !== 'number' || typeof WriteWrap !== 'function') cached = null;
    else cached = { newIpcPipe: () => new Pipe(ipc), newWriteRequest: () => new WriteWrap() };
  } catch {
    cached = null;
  }
  return cached;
}

const fdCapable = new WeakMap<Socket, PipeHandle>();

/**
 * Connects to the unix socket at `path`, able to pass descriptors where this Node.js allows it. The socket
 * behaves as `net.createConnection(path)`'s does ('connect', 'data', 'error', 'close').
 */
export function connectUnix(path: string): Socket {
  const b = bindings();
  if (!b) return createConnection(path);
  const pipe = b.newIpcPipe();
  // manualStart: a Socket given a handle starts reading at once, which an unconnected pipe refuses (ENOTCONN);
  // it reads once connected, as any socket does
  const socket = new Socket({ handle: pipe as never, manualStart: true } as never);
  fdCapable.set(socket, pipe);
  return socket.connect(path);
}

/** Whether `socket` (from connectUnix) can carry a descriptor. */
export function canPassFds(socket: Socket | undefined): boolean {
  return socket !== undefined && fdCapable.has(socket);
}

/**
 * Writes `text` on `socket` with the descriptor of `carried` (a connected TCP socket) attached: the peer
 * receives its own copy of the descriptor. The caller may close `carried` once the peer said it has it.
 */
export function writeWithFd(socket: Socket, text: string, carried: Socket): void {
  const pipe = fdCapable.get(socket);
  const handle = (carried as unknown as { _handle?: unknown })._handle;
  if (!pipe) throw new FlexmigError(ErrorCode.AgentFailed, 'this connection cannot pass file descriptors (connectUnix did not open it as an IPC pipe)');
  if (!handle) throw new FlexmigError(ErrorCode.AgentFailed, 'the connection to pass is closed');
  const req = bindings()!.newWriteRequest();
  req.handle = pipe;
  req.async = false;
  req.oncomplete = () => undefined; // libuv reports the write's end here; the peer's answer is what counts
  const err = pipe.writeUtf8String(req, text, handle);
  if (err !== 0) throw new FlexmigError(ErrorCode.AgentFailed, `passing a descriptor over the unix socket failed: ${getSystemErrorName(err)}`);
}
