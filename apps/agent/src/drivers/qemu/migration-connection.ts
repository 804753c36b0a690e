/**
 * Step 3's TCP connection, opened by the source agent with TCP_NODELAY and handed to its QEMU (QMP `getfd`,
 * then `migrate` to `fd:`), instead of QEMU opening it for a `tcp:` URI.
 *
 * Why: QEMU 7.2 turns Nagle's algorithm off on its multifd channels but not on the main migration channel it
 * connects itself. The final copy, while the guest is paused, ends in a few writes smaller than a segment; with
 * Nagle the last of them waits until the target acknowledges the one before, and the target's kernel delays
 * that acknowledgement (40 ms at least on Linux) when it has nothing to send back. Measured here (two drivers in
 * one process, an idle 256 MiB guest under TCG, QEMU's own downtime figure, 12 runs each): 46–51 ms with QEMU's
 * own connection, 5–11 ms with TCP_NODELAY on the source's socket; on the target's alone it changed nothing.
 * docs/switchover.md, "Nagle's algorithm in the final copy", has the trace.
 *
 * Where the agent cannot hand QEMU a descriptor (fd-passing.ts) or cannot connect itself, QEMU connects as
 * before (`tcp:`): its errors then say what failed, as they always did.
 */
import { Socket } from 'node:net';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { Endpoint, hostPort, tcpUri } from './qemu-address';
import type { QmpClient } from './qmp-client';

/** The name the connection has in QEMU between `getfd` and `migrate` (which takes it). */
export const MIGRATION_FD_NAME = 'flexmig-migration';

/** How long the agent tries to connect before it leaves the connecting to QEMU (a firewall that drops, a dead target). */
export const MIGRATION_CONNECT_TIMEOUT_MS = 5_000;

export interface MigrationConnection {
  /** What `migrate` is given: `fd:<name>` for the agent's connection, else the `tcp:` URI. */
  uri: string;
  /** The agent connected (TCP_NODELAY) and QEMU holds that connection. */
  nodelay: boolean;
  /** Why QEMU connects itself, when it does. */
  why?: string;
}

/** A TCP connection to `target` with Nagle's algorithm off, of which the agent reads nothing. */
export function connectNoDelay(target: Endpoint, timeoutMs = MIGRATION_CONNECT_TIMEOUT_MS): Promise<Socket> {
  const where = hostPort(target.host, target.port);
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    // paused before it connects, so nothing is read into Node: whatever the target sends is QEMU's to read
    socket.pause();
    socket.setNoDelay(true); // kept until the handle exists, applied when it connects (and again below)
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new FlexmigError(ErrorCode.Timeout, `no TCP connection to ${where} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined); // the connection is QEMU's from here; its errors are QEMU's to report
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new FlexmigError(ErrorCode.Unavailable, `cannot connect to ${where}: ${e.message}`));
    });
    socket.connect({ host: target.host, port: target.port });
  });
}

/**
 * Opens the stream's connection and hands it to the source QEMU behind `qmp`, or says why QEMU connects
 * itself. Once QEMU holds the connection the target has accepted it: a failure after that point is an error
 * (the target's incoming QEMU then sees the connection close), not a reason to let QEMU try again.
 */
export async function openMigrationConnection(qmp: QmpClient, target: Endpoint, connect = connectNoDelay): Promise<MigrationConnection> {
  const fallback = tcpUri(target.host, target.port);
  if (!qmp.passesFds) return { uri: fallback, nodelay: false, why: 'this Node.js cannot hand QEMU a descriptor (no pipe_wrap binding)' };
  let socket: Socket;
  try {
    socket = await connect(target);
  } catch (e) {
    return { uri: fallback, nodelay: false, why: `the agent could not connect (${(e as Error).message})` };
  }
  try {
    await qmp.executeWithFd('getfd', { fdname: MIGRATION_FD_NAME }, socket);
  } catch (e) {
    throw new FlexmigError(ErrorCode.AgentFailed, `handing the migration connection to ${hostPort(target.host, target.port)} to QEMU failed: ${(e as Error).message}`);
  } finally {
    socket.destroy(); // the agent's own descriptor only: QEMU's copy keeps the connection open
  }
  return { uri: `fd:${MIGRATION_FD_NAME}`, nodelay: true };
}
