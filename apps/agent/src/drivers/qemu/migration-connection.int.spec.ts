/**
 * The source agent's own migration connection (migration-connection.ts) with REAL QEMU and real sockets: the
 * QMP connection passes a TCP descriptor QEMU then holds under a name, the connection is opened with Nagle
 * off and nothing of it is read by the agent, and each way QEMU is left to connect itself says why. Skips only
 * when qemu-system-x86_64 is not installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '@flexmig/timing';
import { canPassFds } from './fd-passing';
import { MIGRATION_FD_NAME, connectNoDelay, openMigrationConnection } from './migration-connection';
import { QemuProcess } from './qemu-process';
import { QmpClient } from './qmp-client';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) console.warn(`SKIPPED: the migration connection tests need ${BINARY} (apt-get install -y qemu-system-x86)`);
const d = haveQemu ? describe : describe.skip;

/** A listener on 127.0.0.1 that keeps what it accepts (and greets each connection with `greeting`, if given). */
async function listener(greeting?: string): Promise<{ server: Server; port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const server = createServer((s) => {
    accepted.push(s);
    s.on('error', () => undefined);
    if (greeting) s.write(greeting);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, accepted };
}

const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

d('the source agent hands QEMU its own migration connection', () => {
  jest.setTimeout(60_000);
  const root = mkdtempSync(join(tmpdir(), 'fmmc-'));
  let qemu: QemuProcess;
  beforeAll(async () => {
    qemu = await QemuProcess.launch({
      binary: BINARY,
      args: ['-machine', 'none', '-nodefaults', '-display', 'none', '-accel', 'tcg'],
      qmpSocket: join(root, 'q.qmp'),
      logFile: join(root, 'q.log'),
      label: 'VM q',
    });
  });
  afterAll(async () => {
    await qemu?.kill();
    rmSync(root, { recursive: true, force: true });
  });

  it('the QMP connection can pass descriptors: QEMU holds the connection under its name until it is closed', async () => {
    expect(qemu.qmp.passesFds).toBe(true);
    const { server, port, accepted } = await listener();
    try {
      const target = { host: '127.0.0.1', port };
      const c = await openMigrationConnection(qemu.qmp, target);
      expect(c).toEqual({ uri: `fd:${MIGRATION_FD_NAME}`, nodelay: true });
      await until(() => accepted.length === 1, 'the listener accepts the agent\'s connection');
      // the agent closed its own descriptor: the connection stays open, held by QEMU
      let ended = false;
      accepted[0]!.on('close', () => (ended = true));
      await sleep(200);
      expect(ended).toBe(false);
      // QEMU has it by that name: closing it ends the connection, and a second close finds nothing
      await qemu.qmp.execute('closefd', { fdname: MIGRATION_FD_NAME });
      await until(() => ended, 'the connection closes once QEMU closes its descriptor');
      await expect(qemu.qmp.execute('closefd', { fdname: MIGRATION_FD_NAME })).rejects.toMatchObject({ desc: expect.stringMatching(/not found/i) });
    } finally {
      await close(server);
    }
  });

  it('a plain QMP connection cannot: QEMU connects itself (tcp:), and the reason is given', async () => {
    const plain = createConnection(join(root, 'unused.sock'));
    plain.on('error', () => undefined);
    expect(canPassFds(plain)).toBe(false);
    plain.destroy();
    const notCapable = { passesFds: false } as QmpClient;
    await expect(openMigrationConnection(notCapable, { host: '127.0.0.1', port: 4 })).resolves.toEqual({
      uri: 'tcp:127.0.0.1:4',
      nodelay: false,
      why: expect.stringContaining('cannot hand QEMU a descriptor'),
    });
  });

  it('a target the agent cannot reach: QEMU connects itself, and its own error will say what failed', async () => {
    const { server, port } = await listener();
    await close(server); // nothing listens there now
    const c = await openMigrationConnection(qemu.qmp, { host: '127.0.0.1', port });
    expect(c).toEqual({ uri: `tcp:127.0.0.1:${port}`, nodelay: false, why: expect.stringMatching(/could not connect \(cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/) });
    await expect(qemu.qmp.execute('closefd', { fdname: MIGRATION_FD_NAME })).rejects.toMatchObject({ desc: expect.stringMatching(/not found/i) });
  });

  it('QEMU refusing the descriptor is an error naming the target, and the agent keeps no connection open', async () => {
    const { server, port, accepted } = await listener();
    try {
      const refusing = { passesFds: true, executeWithFd: () => Promise.reject(new Error('no fd received')) } as unknown as QmpClient;
      let opened: Socket | undefined;
      const connect = async (t: { host: string; port: number }) => (opened = await connectNoDelay(t));
      await expect(openMigrationConnection(refusing, { host: '127.0.0.1', port }, connect)).rejects.toMatchObject({
        code: 'AGENT_FAILED',
        message: expect.stringContaining(`handing the migration connection to 127.0.0.1:${port} to QEMU failed: no fd received`),
      });
      expect(opened?.destroyed).toBe(true);
      await until(() => accepted.length === 1, 'accepted');
      let ended = false;
      accepted[0]!.on('close', () => (ended = true));
      await until(() => ended, 'the target sees the connection close');
    } finally {
      await close(server);
    }
  });

  it('connectNoDelay reads nothing of what the target sends (it is QEMU\'s to read)', async () => {
    const { server, port } = await listener('the first bytes of the stream');
    try {
      const s = await connectNoDelay({ host: '127.0.0.1', port });
      let read = 0;
      s.on('data', (b: Buffer) => (read += b.length)); // a listener alone does not resume a paused socket
      await sleep(200);
      expect(read).toBe(0);
      expect(s.readableLength).toBe(0);
      s.destroy();
    } finally {
      await close(server);
    }
  });
});
