/**
 * How much of a guest's memory holds data: the resident part of its RAM mapping in QEMU's process. A page
 * the guest never wrote was never faulted in; QEMU migrates it as a zero-page flag of a few bytes, so the
 * first pass of a migration sends about the resident part, not the whole memory (an idle 2 GiB TCG guest
 * here: 2 GiB in 0.3 s). The prediction uses it (docs/prediction.md).
 */
import { readFile } from 'node:fs/promises';

const KiB = 1024;

/**
 * The resident bytes of the guest RAM mapping in a `/proc/<pid>/smaps` text: the largest anonymous
 * mapping no smaller than 95 % of the guest's memory (QEMU maps RAM in one piece, with a little alignment),
 * its `Rss`, at most the memory. Undefined when no such mapping is found (another memory backend).
 */
export function residentGuestBytes(smaps: string, memoryBytes: number): number | undefined {
  let best: { size: number; rss: number } | undefined;
  let current: { anonymous: boolean; size?: number; rss?: number } | undefined;
  const consider = () => {
    if (!current?.anonymous || current.size === undefined || current.rss === undefined) return;
    if (current.size < 0.95 * memoryBytes || current.size > memoryBytes + 256 * 1024 * KiB) return;
    if (!best || current.size > best.size) best = { size: current.size, rss: current.rss };
  };
  for (const line of smaps.split('\n')) {
    // a mapping's header: "start-end perms offset dev inode [path]"
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      consider();
      current = { anonymous: header[1] === '0' && (header[2] ?? '').trim() === '' };
      continue;
    }
    const field = /^(Size|Rss):\s+(\d+) kB$/.exec(line);
    if (field && current) current[field[1] === 'Size' ? 'size' : 'rss'] = Number(field[2]) * KiB;
  }
  consider();
  return best && Math.min(best.rss, memoryBytes);
}

/** {@link residentGuestBytes} of a running QEMU; undefined when its smaps cannot be read. */
export async function readResidentGuestBytes(pid: number, memoryBytes: number): Promise<number | undefined> {
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8').catch(() => undefined);
  return smaps === undefined ? undefined : residentGuestBytes(smaps, memoryBytes);
}
