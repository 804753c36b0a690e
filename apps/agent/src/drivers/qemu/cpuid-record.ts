/**
 * Reads back the CPUID the workload guest executed (guest/workload.S, "CPUID record"): the guest samples
 * CPUID at boot and at every 'B' marker, and writes the rows at CPUID_AREA. Over QMP `pmemsave`, the
 * agent waits for a sample newer than the one present when it asked (so, after a migration, a sample
 * the guest took on this host), and reads it with a sequence check, so a half-written sample is never used.
 */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { sleep } from '@flexmig/timing';
import { QmpClient } from './qmp-client';
import { createPrivateFile } from '../../private-files';

/** Where the guest writes its CPUID record (physical address; below the workload range, which starts at 1 MiB). */
export const CPUID_AREA = 0x9000;
/** 'FXCP' little-endian. */
export const CPUID_MAGIC = 0x50435846;
const HEADER = 16;
const ROW = 24;
/** More rows than the guest's table could ever hold in a 512-byte boot sector: a bigger count is garbage. */
const MAX_ROWS = 64;

export interface CpuidSampleRow {
  leaf: number;
  subleaf: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export type CpuidRecord = { state: 'absent' } | { state: 'writing'; seq: number } | { state: 'complete'; seq: number; rows: CpuidSampleRow[] };

/** Decodes the record bytes (header and rows). Pure. */
export function parseCpuidRecord(buf: Uint8Array): CpuidRecord {
  if (buf.length < HEADER) return { state: 'absent' };
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(0, true) !== CPUID_MAGIC) return { state: 'absent' };
  const seq = v.getUint32(4, true);
  if (seq % 2 === 1) return { state: 'writing', seq };
  const n = v.getUint32(8, true);
  if (n === 0 || n > MAX_ROWS) throw new FlexmigError(ErrorCode.MalformedCpuid, `the guest's CPUID record says ${n} rows (expected 1..${MAX_ROWS})`);
  if (buf.length < HEADER + n * ROW) throw new FlexmigError(ErrorCode.MalformedCpuid, `the guest's CPUID record has ${n} rows but only ${buf.length} bytes were read`);
  const rows: CpuidSampleRow[] = [];
  for (let i = 0; i < n; i++) {
    const o = HEADER + i * ROW;
    rows.push({
      leaf: v.getUint32(o, true),
      subleaf: v.getUint32(o + 4, true),
      eax: v.getUint32(o + 8, true),
      ebx: v.getUint32(o + 12, true),
      ecx: v.getUint32(o + 16, true),
      edx: v.getUint32(o + 20, true),
    });
  }
  return { state: 'complete', seq, rows };
}

export interface GuestCpuidSample {
  rows: CpuidSampleRow[];
  /** The guest's sample number (2 per sample). */
  seq: number;
  sampledAt: Date;
}

/**
 * Waits for the guest to take a fresh CPUID sample (its sequence moves past the one found first) and
 * returns it. The guest must run: a paused guest takes no sample, and the wait ends in TIMEOUT.
 */
export async function readFreshGuestCpuid(qmp: QmpClient, o: { dir: string; timeoutMs?: number }): Promise<GuestCpuidSample> {
  const file = join(o.dir, `cpuid-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.bin`);
  const timeoutMs = o.timeoutMs ?? 20_000;
  const size = HEADER + MAX_ROWS * ROW;
  const read = async (): Promise<CpuidRecord> => {
    await qmp.execute('pmemsave', { val: CPUID_AREA, size, filename: file });
    return parseCpuidRecord(readFileSync(file));
  };
  try {
    createPrivateFile(file);
    const status = await qmp.execute<{ status: string; running: boolean }>('query-status');
    if (!status.running) throw new FlexmigError(ErrorCode.VmNotRunning, `CPU check: the guest is ${status.status}, not running: it takes no CPUID sample`);
    const first = await read();
    const before = first.state === 'absent' ? -1 : first.seq;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await sleep(50);
      const r = await read();
      if (r.state !== 'complete' || r.seq <= before) continue;
      // the rows were read after the sequence: the sample is whole only if no new one began meanwhile
      const again = await read();
      if (again.state === 'complete' && again.seq === r.seq) return { rows: r.rows, seq: r.seq, sampledAt: new Date() };
    }
    throw new FlexmigError(
      ErrorCode.Timeout,
      first.state === 'absent'
        ? `CPU check: the guest wrote no CPUID record at 0x${CPUID_AREA.toString(16)} within ${timeoutMs} ms (is it the flexmig workload guest?)`
        : `CPU check: the guest took no new CPUID sample within ${timeoutMs} ms (sequence stayed at ${before}): it does not run`,
    );
  } finally {
    await rm(file, { force: true });
  }
}
