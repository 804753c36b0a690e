/**
 * Every baseline of the catalog under REAL QEMU with TCG and `enforce` (issue 12): one tiny VM per
 * baseline, one after the other (16 MiB, the workload guest sampling CPUID every few ms). A baseline TCG
 * can present must show the guest exactly its features (compareGuestCpuid: nothing missing, nothing
 * extra, documented exceptions only), before and after a real live migration into a second QEMU. One
 * it cannot must be refused at start by `enforce`, with the features QEMU names, and be listed in
 * libs/cpu-models/README.md ("Baselines TCG cannot present").
 * Skips only when qemu-system-x86_64 is not installed.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareGuestCpuid, listBaselines } from '@flexmig/cpu-models';
import type { GuestCpuComparison } from '@flexmig/cpu-models';
import { repoRoot } from '@flexmig/testing';
import { readFreshGuestCpuid } from './cpuid-record';
import { buildGuestImage } from './guest/build-guest';
import { QemuProcess } from './qemu-process';
import { MACHINE_TYPE } from './vm-registry';

const BINARY = process.env.QEMU_BINARY ?? 'qemu-system-x86_64';
const haveQemu = spawnSync(BINARY, ['--version']).status === 0;
if (!haveQemu) console.warn(`SKIPPED: the guest CPU baseline survey needs ${BINARY} (apt-get install -y qemu-system-x86)`);
const d = haveQemu ? describe : describe.skip;

type Comparison = GuestCpuComparison & { vendor: string };
/** A baseline that runs is also migrated: `after` is what its guest sees on the destination QEMU. */
type Outcome =
  | { baseline: string; cpu: string; runs: true; comparison: Comparison; after: Comparison; seq: { before: number; after: number } }
  | { baseline: string; cpu: string; runs: false; missing: string[]; unknownModel: boolean; log: string };

/**
 * A real live migration of the running guest (precopy over a unix socket, return-path on both sides so
 * that the source waits for the destination's load) into a second QEMU with the same arguments; returns
 * the destination, which runs the guest on from its migrated memory.
 */
async function migrate(src: QemuProcess, args: string[], files: { qmp: string; log: string; stream: string }, label: string): Promise<QemuProcess> {
  const dst = await QemuProcess.launch({ binary: BINARY, args: [...args, '-incoming', 'defer'], qmpSocket: files.qmp, logFile: files.log, label });
  try {
    const returnPath = { capabilities: [{ capability: 'return-path', state: true }] };
    await dst.qmp.execute('migrate-set-capabilities', returnPath);
    await src.qmp.execute('migrate-set-capabilities', returnPath);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${files.stream}` });
    await src.qmp.execute('migrate', { uri: `unix:${files.stream}` });
    for (const deadline = Date.now() + 60_000; ; ) {
      const { status, 'error-desc': error } = await src.qmp.execute<{ status: string; 'error-desc'?: string }>('query-migrate');
      if (status === 'completed') break;
      if (['failed', 'cancelled'].includes(status) || Date.now() > deadline) throw new Error(`migration of ${label}: ${status} ${error ?? ''} (destination log: ${readFileSync(files.log, 'utf8').slice(-500)})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return dst;
  } catch (e) {
    await dst.quit(2_000);
    throw e;
  }
}

/** QEMU's `enforce` refusal names each feature: "TCG doesn't support requested feature: CPUID.07H:EBX.hle [bit 4]". */
function refusedFeatures(log: string): string[] {
  return [...new Set([...log.matchAll(/requested feature: \S+?\.([\w.-]+) \[bit \d+\]/g)].map((m) => m[1]!))].sort();
}

d('every catalog baseline under TCG with enforce: what the guest sees', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fm-guestcpu-'));
  const outcomes: Outcome[] = [];

  beforeAll(async () => {
    // a 16-page workload with a CPUID sample every 1000 page writes (tens of ms under TCG)
    const image = await buildGuestImage(dir, { memStart: 1 << 20, memEnd: (1 << 20) + 16 * 4096, markEvery: 100, delay: 10_000, sampleEvery: 1000 });
    for (const b of listBaselines()) {
      const cpu = `${b.qemuCpu},enforce`;
      const files = { qmp: join(dir, `${b.name}.qmp`), log: join(dir, `${b.name}.log`) };
      const args = ['-machine', `${MACHINE_TYPE},accel=tcg`, '-cpu', cpu, '-m', '16', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-drive', `file=${image},format=raw,if=ide,index=0,media=disk,snapshot=on`];
      let proc: QemuProcess;
      try {
        proc = await QemuProcess.launch({ binary: BINARY, args, qmpSocket: files.qmp, logFile: files.log, label: `baseline ${b.name}` });
      } catch {
        const log = readFileSync(files.log, 'utf8');
        outcomes.push({ baseline: b.name, cpu, runs: false, missing: refusedFeatures(log), unknownModel: /unable to find CPU model/i.test(log), log });
        continue;
      }
      let dst: QemuProcess | undefined;
      try {
        const before = await readFreshGuestCpuid(proc.qmp, { dir, timeoutMs: 20_000 });
        const stream = join(dir, `${b.name}.migration`);
        dst = await migrate(proc, args, { qmp: join(dir, `${b.name}.dst.qmp`), log: join(dir, `${b.name}.dst.log`), stream }, `baseline ${b.name} (destination)`);
        const after = await readFreshGuestCpuid(dst.qmp, { dir, timeoutMs: 20_000 });
        outcomes.push({
          baseline: b.name,
          cpu,
          runs: true,
          comparison: compareGuestCpuid(b.name, before.rows, { accel: 'tcg' }),
          after: compareGuestCpuid(b.name, after.rows, { accel: 'tcg' }),
          seq: { before: before.seq, after: after.seq },
        });
      } finally {
        await dst?.quit(2_000);
        await proc.quit(2_000);
      }
    }
    // the survey, for the README table and CI logs
    console.log(
      outcomes
        .map((o) =>
          o.runs
            ? `${o.baseline}: runs; guest sees ${o.comparison.seen.length} features; missing [${o.comparison.missing}] extra [${o.comparison.extra}] exceptions [${o.comparison.exceptions.map((e) => `${e.seen ? '+' : '-'}${e.feature}`)}]; ` +
              `after a live migration: ${o.after.seen.length} features, missing [${o.after.missing}] extra [${o.after.extra}]`
            : `${o.baseline}: refused: ${o.unknownModel ? 'this QEMU has no such model' : o.missing.join(', ')}`,
        )
        .join('\n'),
    );
  }, 600_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('tries every baseline of the catalog', () => {
    expect(outcomes.map((o) => o.baseline)).toEqual(listBaselines().map((b) => b.name));
  });

  it('shows the guest of every baseline TCG runs exactly that baseline (documented exceptions only)', () => {
    const running = outcomes.filter((o): o is Extract<Outcome, { runs: true }> => o.runs);
    expect(running.length).toBeGreaterThan(0);
    for (const o of running) {
      expect({ baseline: o.baseline, ok: o.comparison.ok, missing: o.comparison.missing, extra: o.comparison.extra }).toEqual({ baseline: o.baseline, ok: true, missing: [], extra: [] });
      expect(o.comparison.vendor).toBe(listBaselines().find((b) => b.name === o.baseline)!.vendor ?? o.comparison.vendor);
    }
  });

  it('shows every such guest the same CPU after a real live migration to another QEMU, sampled on the destination', () => {
    const running = outcomes.filter((o): o is Extract<Outcome, { runs: true }> => o.runs);
    expect(running.length).toBeGreaterThan(0);
    for (const o of running) {
      expect({ baseline: o.baseline, ok: o.after.ok, missing: o.after.missing, extra: o.after.extra }).toEqual({ baseline: o.baseline, ok: true, missing: [], extra: [] });
      expect({ baseline: o.baseline, seen: o.after.seen, exceptions: o.after.exceptions }).toEqual({ baseline: o.baseline, seen: o.comparison.seen, exceptions: o.comparison.exceptions });
      // a sample the guest took after the move: its sequence went on from the migrated memory
      expect({ baseline: o.baseline, later: o.seq.after > o.seq.before }).toEqual({ baseline: o.baseline, later: true });
    }
  });

  it('refuses the others at start naming the features, and README lists each of them', () => {
    const readme = readFileSync(join(repoRoot, 'libs/cpu-models/README.md'), 'utf8');
    const section = readme.split('### Baselines TCG cannot present')[1]?.split('\n### ')[0] ?? '';
    expect(section).not.toBe('');
    for (const o of outcomes.filter((x): x is Extract<Outcome, { runs: false }> => !x.runs)) {
      // either QEMU does not know the model at all, or enforce names what TCG lacks
      expect({ baseline: o.baseline, why: o.unknownModel || o.missing.length > 0 }).toEqual({ baseline: o.baseline, why: true });
      expect({ baseline: o.baseline, listed: section.includes(`| ${o.baseline} |`) }).toEqual({ baseline: o.baseline, listed: true });
    }
  });
});
