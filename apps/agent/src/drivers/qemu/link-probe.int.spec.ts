/**
 * The link probe with REAL QEMU and the real TCP sink: one driver (the source) migrates a probe QEMU into
 * a link sink a second driver (the target) opened, as the scheduler has them do (docs/prediction.md).
 * Skips only when qemu-system-x86_64 is not installed.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpenLinkSink, ProbeLink } from '@flexmig/contracts';
import { AgentEnv } from '../../config';
import { PredictionHandlers } from '../../prediction.handlers';
import { QemuDriver, QemuDriverOptions } from './qemu.driver';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) console.warn(`SKIPPED: the link probe tests need ${BINARY} (apt-get install -y qemu-system-x86)`);
const d = haveQemu ? describe : describe.skip;
const MiB = 1024 * 1024;
const PROBE_MIB = 32;

/** The live processes whose command line names a path under `prefix` (a probe QEMU's files). */
function processesNaming(prefix: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(prefix)) found.push(Number(pid));
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

d('link probe: a probe QEMU migrated into the target agent\'s link sink', () => {
  jest.setTimeout(120_000);
  const root = mkdtempSync(join(tmpdir(), 'fmlp-'));
  const drivers: QemuDriver[] = [];
  const driver = (name: string, extra: Partial<QemuDriverOptions> = {}) => {
    const runDir = join(root, name);
    const drv = new QemuDriver({ binary: BINARY, accel: 'tcg', runDir, listenHost: '127.0.0.1', dirtyRateIntervalMs: 0, linkProbeMiB: PROBE_MIB, ...extra });
    drivers.push(drv);
    return { drv, runDir };
  };
  const { drv: src, runDir: srcDir } = driver('src');
  const { drv: dst } = driver('dst', { portRange: [47310, 47319] });
  /** Nothing of a probe is left on the source: no QEMU naming its directory, no directory. */
  const expectNoProbeLeft = () => {
    expect(readdirSync(srcDir).filter((n) => n.startsWith('link-probe-'))).toEqual([]);
    expect(processesNaming(join(srcDir, 'link-probe-'))).toEqual([]);
  };

  afterAll(async () => {
    for (const drv of drivers) await drv.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('given a sink on the target, when the source probes towards it, then QEMU\'s figure is positive, every byte of the probe RAM reached the sink and nothing of the probe is left', async () => {
    const sink = await dst.openLinkSink('src');
    const [, port] = sink.address.split(':');
    expect(Number(port)).toBeGreaterThanOrEqual(47310);
    expect(Number(port)).toBeLessThanOrEqual(47319);
    const p = await src.probeLink('dst', sink.address);
    expect(p.origin).toBe('probe');
    expect(p.bandwidthBytesPerSec).toBeGreaterThan(0);
    expect(p.detail).toContain(sink.address);
    expect(p.detail).toContain('QEMU');
    const got = await sink.result;
    expect(got.end).toBe('eof');
    expect(got.bytes).toBeGreaterThanOrEqual(PROBE_MIB * MiB);
    expectNoProbeLeft();
  });

  it('given the agents\' handlers, then the sink and the probe answer their contracts, and the sink takes one connection only', async () => {
    const env = (id: string) => ({ HOST_ID: id }) as AgentEnv;
    const sink = OpenLinkSink.reply.parse(await new PredictionHandlers(dst, env('dst')).openLinkSink({ sourceHostId: 'src' }));
    expect(sink.address).toMatch(/^127\.0\.0\.1:4731\d$/);
    expect(Date.parse(sink.expiresAt!)).toBeGreaterThan(Date.now());
    const probe = ProbeLink.reply.parse(await new PredictionHandlers(src, env('src')).probeLink({ targetHostId: 'dst', targetAddress: sink.address! }));
    expect(probe).toMatchObject({ origin: 'probe' });
    // the one connection came and went: the sink no longer listens
    await expect(src.probeLink('dst', sink.address!)).rejects.toMatchObject({ code: 'AGENT_FAILED', message: expect.stringMatching(/refused/i) });
    expectNoProbeLeft();
  });

  it('given an address where nothing listens, then the probe fails saying QEMU\'s reason and what to check, and leaves nothing behind', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    await expect(src.probeLink('dst', address)).rejects.toMatchObject({
      code: 'AGENT_FAILED',
      message: expect.stringMatching(new RegExp(`link probe towards dst \\(${address}\\).*failed.*refused.*link sink`, 'is')),
    });
    expectNoProbeLeft();
  });

  it('given a sink no one connects to in time, then it closes unused and a late probe is refused', async () => {
    const { drv: quick } = driver('quick', { linkSinkAcceptMs: 300 });
    const sink = await quick.openLinkSink('src');
    expect(await sink.result).toMatchObject({ end: 'unused', bytes: 0, peer: null });
    await expect(src.probeLink('quick', sink.address)).rejects.toMatchObject({ code: 'AGENT_FAILED', message: expect.stringMatching(/refused/i) });
    expectNoProbeLeft();
  });

  it('given a sink whose byte cap is below the probe, then the sink stops at its cap and the probe fails clearly', async () => {
    const sink = await dst.openLinkSink('src', MiB);
    await expect(src.probeLink('dst', sink.address)).rejects.toMatchObject({ code: 'AGENT_FAILED', message: expect.stringMatching(/failed/) });
    const got = await sink.result;
    expect(got.end).toBe('cap');
    expect(got.bytes).toBeGreaterThanOrEqual(MiB);
    expect(got.bytes).toBeLessThan(PROBE_MIB * MiB);
    expectNoProbeLeft();
  });

  it('given the directory of a probe an earlier agent left behind, when the driver starts, then it is removed', () => {
    const runDir = join(root, 'restarted');
    mkdirSync(join(runDir, 'link-probe-old'), { recursive: true });
    writeFileSync(join(runDir, 'link-probe-old', 'ram'), 'x');
    driver('restarted');
    expect(readdirSync(runDir).filter((n) => n.startsWith('link-probe-'))).toEqual([]);
  });
});
