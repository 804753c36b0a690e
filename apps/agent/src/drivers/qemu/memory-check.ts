/**
 * Proves that a migrated workload guest (guest/workload.S) lost nothing, like QEMU's check_guests_ram:
 * on the target, wait until the first test byte changes (the guest runs there), `stop`, read the range
 * with `pmemsave` and check that byte 0 of every page holds the same value except at most one boundary
 * where it drops by exactly 1 (mod 256): where the stopped guest was in its pass. A page that lags its
 * neighbours any other way was dirtied after it was sent and never re-sent. Then `cont`, and wait until
 * the guest advances again.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { QmpClient } from './qmp-client';
import { createPrivateFile } from '../../private-files';

export interface MemoryCheckResult {
  ok: boolean;
  pages: number;
  /** Pages that break the pattern (0 when ok). */
  badPages: number;
  /** Where the guest was in its pass when stopped (page index of the drop), or null if all pages were equal. */
  boundaryPage: number | null;
  firstValue: number;
  /** Up to 10 offending pages (address, value, previous value). */
  examples: Array<{ address: number; value: number; previous: number }>;
  /** The guest changed its first test byte again after `cont`. */
  advancedAfterCheck: boolean;
}

/** Pure check of the page bytes (byte 0 of each page, in address order). */
export function checkPagePattern(bytes: Uint8Array, memStart = 0): Omit<MemoryCheckResult, 'advancedAfterCheck'> {
  let bad = 0;
  let boundary: number | null = null;
  const examples: MemoryCheckResult['examples'] = [];
  for (let i = 1; i < bytes.length; i++) {
    const prev = bytes[i - 1]!;
    const cur = bytes[i]!;
    if (cur === prev) continue;
    if (cur === ((prev - 1) & 0xff) && boundary === null) {
      boundary = i;
      continue;
    }
    bad++;
    if (examples.length < 10) examples.push({ address: memStart + i * 4096, value: cur, previous: prev });
  }
  return { ok: bad === 0, pages: bytes.length, badPages: bad, boundaryPage: boundary, firstValue: bytes[0] ?? 0, examples };
}

async function readByte(qmp: QmpClient, address: number, file: string): Promise<number> {
  await qmp.execute('pmemsave', { val: address, size: 1, filename: file });
  return readFileSync(file)[0]!;
}

export interface MemoryCheckOptions {
  memStart: number;
  memEnd: number;
  /** How long to wait for the guest to change its first test byte (default 30 s). */
  timeoutMs?: number;
  /** Where the dumps go: the driver's run dir (0700). The files are 0600 and removed after the check. */
  dir: string;
}

/** Waits until the first test byte of the range differs from its current value. */
async function waitForChange(qmp: QmpClient, address: number, file: string, timeoutMs: number): Promise<boolean> {
  const first = await readByte(qmp, address, file);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await sleep(20);
    if ((await readByte(qmp, address, file)) !== first) return true;
  }
  return false;
}

/** Runs the check on a running guest (`qmp` of the target QEMU). Leaves the guest running. */
export async function checkGuestMemory(qmp: QmpClient, o: MemoryCheckOptions): Promise<MemoryCheckResult> {
  const tag = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const byteFile = join(o.dir, `memcheck-${tag}.byte`);
  const dumpFile = join(o.dir, `memcheck-${tag}.bin`);
  const timeoutMs = o.timeoutMs ?? 30_000;
  try {
    // guest memory: created 0600 here, so QEMU's pmemsave (fopen "wb") writes into files only we can read
    createPrivateFile(byteFile);
    createPrivateFile(dumpFile);
    const status = await qmp.execute<{ status: string; running: boolean }>('query-status');
    if (!status.running) throw new FlexmigError(ErrorCode.VmNotRunning, `memory check: the guest is ${status.status}, not running`);
    if (!(await waitForChange(qmp, o.memStart, byteFile, timeoutMs))) {
      throw new FlexmigError(ErrorCode.Timeout, `memory check: the guest did not change its first test byte at 0x${o.memStart.toString(16)} within ${timeoutMs} ms: it does not run`);
    }
    await qmp.execute('stop');
    let result: Omit<MemoryCheckResult, 'advancedAfterCheck'>;
    try {
      const a = await readByte(qmp, o.memStart, byteFile);
      await sleep(100);
      const b = await readByte(qmp, o.memStart, byteFile);
      if (a !== b) throw new FlexmigError(ErrorCode.Internal, 'memory check: the guest changed memory while stopped');
      await qmp.execute('pmemsave', { val: o.memStart, size: o.memEnd - o.memStart, filename: dumpFile }, 120_000);
      const dump = readFileSync(dumpFile);
      const pages = new Uint8Array(Math.floor(dump.length / 4096));
      for (let i = 0; i < pages.length; i++) pages[i] = dump[i * 4096]!;
      result = checkPagePattern(pages, o.memStart);
    } finally {
      await qmp.execute('cont');
    }
    const advancedAfterCheck = await waitForChange(qmp, o.memStart, byteFile, timeoutMs);
    return { ...result, advancedAfterCheck };
  } finally {
    await Promise.all([rm(byteFile, { force: true }), rm(dumpFile, { force: true })]);
  }
}
