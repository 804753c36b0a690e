/**
 * Builds the guest workload boot image (workload.S) with the GNU assembler into a directory, cached by
 * the hash of the source and the parameters: the same VM spec gives the same bytes on every host, so
 * source and target boot identical images (the "shared storage" of this driver: nothing is copied).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, FlexmigError, VmSpec } from '@flexmig/contracts';

const run = promisify(execFile);
export const GUEST_SOURCE = join(__dirname, 'workload.S');
const PAGE = 4096;
const MiB = 1 << 20;

export interface GuestParams {
  /** First byte of the written range (page aligned, ≥ 1 MiB). */
  memStart: number;
  /** End of the range, exclusive (page aligned). */
  memEnd: number;
  /** Full passes between two 'B' markers on the serial port. */
  markEvery: number;
  /** Spin iterations after each page write: sets the dirty rate (0 = as fast as the vCPU goes). */
  delay: number;
  /** Page writes between two CPUID samples (workload.S "CPUID record"): about 10 samples a second. */
  sampleEvery: number;
}

/**
 * Rough spin-loop speed of a vCPU (iterations per second), for turning a dirty rate into a delay.
 * Measured on the project's reference machine: TCG ≈ 390 M/s (DELAY 10000 gave ≈ 150 MiB/s); KVM runs
 * the loop natively. It is an estimate: the dirty rate of the guest is within a few times the asked one.
 */
export const DEFAULT_SPIN_ITERS_PER_SEC: Record<'kvm' | 'tcg', number> = { tcg: 390e6, kvm: 1.5e9 };

/**
 * The workload of a VM spec:
 *   range  [1 MiB, 1 MiB + workingSetMiB); without a working set a VM with a dirty rate writes all of
 *          its memory but the lowest and highest MiB, and an idle VM (no workload, or rate 0) 1 MiB;
 *   rate   workload.dirtyRateMiBps, turned into a spin delay; an idle VM writes about 1 MiB/s so that
 *          the memory check can see it advance.
 */
export function guestParamsFor(vm: Pick<VmSpec, 'memoryMiB' | 'workload'>, spinItersPerSec: number): GuestParams {
  const w = vm.workload;
  const rate = w?.dirtyRateMiBps ?? 0;
  const idle = !w || rate <= 0;
  const maxSpan = Math.max(PAGE, (vm.memoryMiB - 2) * MiB);
  const wantedMiB = w?.workingSetMiB ?? (idle ? 1 : vm.memoryMiB - 2);
  const span = Math.min(maxSpan, Math.max(PAGE, Math.floor((wantedMiB * MiB) / PAGE) * PAGE));
  const memStart = MiB;
  const memEnd = memStart + span;
  const pagesPerSec = (idle ? 1 : rate) * (MiB / PAGE);
  const delay = Math.max(0, Math.round(spinItersPerSec / pagesPerSec));
  const effectivePagesPerSec = delay > 0 ? spinItersPerSec / delay : spinItersPerSec / 10;
  const passesPerSec = effectivePagesPerSec / (span / PAGE);
  const markEvery = Math.max(1, Math.min(0x7fffffff, Math.round(passesPerSec / 2)));
  const sampleEvery = Math.max(1, Math.min(0x7fffffff, Math.round(effectivePagesPerSec / 10)));
  return { memStart, memEnd, markEvery, delay, sampleEvery };
}

/** Builds (or finds) the image for these parameters in `dir`; returns its path. */
export async function buildGuestImage(dir: string, p: GuestParams): Promise<string> {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new FlexmigError(ErrorCode.ValidationFailed, `guest parameter ${k}=${v} is not a 32-bit unsigned integer`);
  }
  if (p.memStart < MiB || p.memStart % PAGE || p.memEnd % PAGE || p.memEnd <= p.memStart || p.markEvery < 1 || p.sampleEvery < 1) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `bad guest range/parameters ${JSON.stringify(p)}`);
  }
  const source = readFileSync(GUEST_SOURCE, 'utf8');
  const hash = createHash('sha256').update(source).update(JSON.stringify(p)).digest('hex').slice(0, 16);
  await mkdir(dir, { recursive: true });
  const img = join(dir, `guest-${hash}.img`);
  if (existsSync(img)) return img;
  const tmp = join(dir, `.build-${hash}-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    const defs = Object.entries({ MEM_START: p.memStart, MEM_END: p.memEnd, MARK_EVERY: p.markEvery, DELAY: p.delay, SAMPLE_EVERY: p.sampleEvery }).flatMap(([k, v]) => ['--defsym', `${k}=${v}`]);
    await run('as', ['--32', ...defs, GUEST_SOURCE, '-o', `${tmp}.o`]);
    await run('ld', ['-m', 'elf_i386', '-Ttext=0x7c00', '-e', '_start', '-o', `${tmp}.elf`, `${tmp}.o`]);
    await run('objcopy', ['-O', 'binary', '-j', '.text', `${tmp}.elf`, `${tmp}.img`]);
    const bytes = readFileSync(`${tmp}.img`);
    if (bytes.length !== 512 || bytes[510] !== 0x55 || bytes[511] !== 0xaa) {
      throw new FlexmigError(ErrorCode.Internal, `the guest boot sector built from ${GUEST_SOURCE} is ${bytes.length} bytes without the 55 AA signature`);
    }
    await rename(`${tmp}.img`, img);
    return img;
  } catch (e) {
    if (e instanceof FlexmigError) throw e;
    const err = e as { message: string; stderr?: string };
    throw new FlexmigError(ErrorCode.Internal, `building the guest workload image failed (are binutils 'as', 'ld', 'objcopy' installed?): ${err.stderr || err.message}`);
  } finally {
    await Promise.all(['.o', '.elf', '.img'].map((s) => rm(`${tmp}${s}`, { force: true })));
  }
}
