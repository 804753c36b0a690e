/**
 * A QEMU that ends without the agent asking, with REAL QEMU: the next QMP call says how it ended and what
 * its log says, so an operator (and a failing test) learns why a VM went away. Skips only when
 * qemu-system-x86_64 is not installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuProcess, describeExit } from './qemu-process';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) console.warn(`SKIPPED: the QEMU process tests need ${BINARY} (apt-get install -y qemu-system-x86)`);
const d = haveQemu ? describe : describe.skip;

d('QemuProcess: a QEMU that ends unasked', () => {
  jest.setTimeout(60_000);
  const root = mkdtempSync(join(tmpdir(), 'fmqp-'));
  let n = 0;
  const launch = () => {
    const name = `q${++n}`;
    return QemuProcess.launch({
      binary: BINARY,
      args: ['-machine', 'none', '-nodefaults', '-display', 'none', '-accel', 'tcg'],
      qmpSocket: join(root, `${name}.qmp`),
      logFile: join(root, `${name}.log`),
      label: `VM ${name}`,
    });
  };
  const started: QemuProcess[] = [];
  afterAll(async () => {
    await Promise.all(started.map((p) => p.kill()));
    rmSync(root, { recursive: true, force: true });
  });

  it('a SIGTERM from elsewhere: the QMP error names the exit and the signal QEMU logged, with the sender', async () => {
    const p = await launch();
    started.push(p);
    expect(p.alive).toBe(true);
    process.kill(p.pid, 'SIGTERM');
    await p.exited;
    expect(p.exit).toEqual({ code: 0, signal: null, asked: false });
    // QEMU handles SIGTERM itself: it logs who sent it and exits 0, which is what this agent reads. The
    // socket's close and the exit's reaping come in either order; the error says the same either way.
    const err = (await p.qmp.execute('query-status').catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/^QMP query-status on VM q1: /);
    expect(err.message).toContain(`QEMU pid ${p.pid}`);
    expect(err.message).toContain(`terminating on signal 15 from pid ${process.pid}`);
    // once reaped, the same one-line text everywhere, the exit named
    expect(p.describeEnd()).toMatch(new RegExp(`^QEMU pid ${p.pid} exited with status 0, unasked; its log ends: .*terminating on signal 15 from pid ${process.pid}`));
    expect(p.describeEnd()).not.toContain('\n');
  });

  it('a SIGKILL from elsewhere: the exit names the signal', async () => {
    const p = await launch();
    started.push(p);
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
    expect(p.exit).toEqual({ code: null, signal: 'SIGKILL', asked: false });
    expect(describeExit(p.exit)).toBe('was killed by SIGKILL, unasked');
    // the text the registry's warning and a failed transfer give: a SIGKILL leaves QEMU no last words
    expect(p.describeEnd()).toBe(`QEMU pid ${p.pid} was killed by SIGKILL, unasked; its log ${join(root, 'q2.log')} is empty`);
  });

  it('quit asked by the agent: the exit is recorded as asked and the closed connection says so', async () => {
    const p = await launch();
    started.push(p);
    await p.quit();
    expect(p.exit).toEqual({ code: 0, signal: null, asked: true });
    const err = (await p.qmp.execute('query-status').catch((e: Error) => e)) as Error;
    // the socket's close (a reset, often) or the agent's own, whichever came first: no word of an unasked end
    expect(err.message).toMatch(/^QMP query-status on VM q3: /);
    expect(err.message).not.toMatch(/unasked|its log/);
  });
});
