/**
 * Whether a target QEMU touches all of its guest's memory before the stream arrives (`-mem-prealloc`).
 *
 * Why: with `return-path`, the source's switchover ends only once the target has taken in the whole
 * stream, and the first pass of an idle guest is mostly zero-page flags (about 9 bytes for a 4 KiB page),
 * each of which costs the target a read of a page it has never faulted in. On a nested 2-vCPU machine
 * that backlog was most of the guest's downtime: an idle 512 MiB guest was down 206–811 ms against the
 * policy's 300 ms limit, bare QMP 10–458 ms; with the target's memory preallocated, 25–74 ms and 8–16 ms
 * (bench/qemu/README.md, "The target's memory touched before the stream"). The pages are touched in step
 * 2, while the guest still runs on the source, at the cost of a longer step 2 and of the whole guest being
 * resident on the target at once.
 *
 * `auto` (the default) preallocates only when the memory is available now, with headroom: the host's
 * `MemAvailable`, and under a memory limit of the agent's cgroup (a Kubernetes pod's: QEMU runs in the
 * agent's container) what the limit leaves. On a host short of it (one whose memory is overcommitted,
 * `memoryAllocationRatio` above 1, once its guests use what they were given), or a pod limited below its
 * guests' memory, touching every page of a guest could push it into swap or the OOM killer, so there the
 * pages fault in as the stream writes them, as before. A touched guest holds all of its memory for good, as
 * one that wrote all of it would: on a cluster that counts on guests leaving memory untouched, `off` keeps
 * that bet. `on` always, `off` never.
 */
export type PreallocSetting = 'auto' | 'on' | 'off';

/** Free memory `auto` leaves beside the guest's: the host's own processes, page cache, other guests' growth. */
export const PREALLOC_HEADROOM_MIB = 1024;

export interface PreallocDecision {
  prealloc: boolean;
  /** Why, for the agent's log line. */
  reason: string;
}

const MIB = 1024 * 1024;

/** `MemAvailable` of a `/proc/meminfo` text, in MiB; undefined when it has none (a kernel before 3.14). */
export function memAvailableMiB(meminfo: string): number | undefined {
  const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo)?.[1];
  return kib === undefined ? undefined : Math.floor((Number(kib) * 1024) / MIB);
}

/** A cgroup limit this high is no limit (cgroup v1 writes "unlimited" as about 2^63). */
const NO_LIMIT_BYTES = 2 ** 60;

/**
 * What the memory limit of this process's cgroup leaves, in MiB (limit − usage); undefined without a limit
 * or without a readable one. `procSelfCgroup`: `/proc/self/cgroup`'s text; `read`: a file's text, undefined
 * when absent. cgroup v2 (`0::<path>`: memory.max, memory.current) and v1 (`<n>:memory:<path>`:
 * memory.limit_in_bytes, memory.usage_in_bytes), each under the path the process is in, else at the root of
 * the mount (a container's own cgroup namespace shows its cgroup there).
 */
export function cgroupRoomMiB(procSelfCgroup: string, read: (path: string) => string | undefined): number | undefined {
  const pair = (dir: string, limitFile: string, usageFile: string): [string, string] | undefined => {
    const limit = read(`${dir}/${limitFile}`)?.trim();
    const usage = read(`${dir}/${usageFile}`)?.trim();
    return limit !== undefined && usage !== undefined ? [limit, usage] : undefined;
  };
  const v2 = /^0::(\S*)$/m.exec(procSelfCgroup)?.[1];
  const v1 = /^\d+:(?:[^:\n]*,)?memory(?:,[^:\n]*)?:(\S*)$/m.exec(procSelfCgroup)?.[1];
  const found =
    (v1 !== undefined ? (pair(`/sys/fs/cgroup/memory${v1}`, 'memory.limit_in_bytes', 'memory.usage_in_bytes') ?? pair('/sys/fs/cgroup/memory', 'memory.limit_in_bytes', 'memory.usage_in_bytes')) : undefined) ??
    (v2 !== undefined ? (pair(`/sys/fs/cgroup${v2 === '/' ? '' : v2}`, 'memory.max', 'memory.current') ?? pair('/sys/fs/cgroup', 'memory.max', 'memory.current')) : undefined);
  if (!found || found[0] === 'max') return undefined;
  const [limit, usage] = found.map(Number) as [number, number];
  if (!Number.isFinite(limit) || !Number.isFinite(usage) || limit >= NO_LIMIT_BYTES) return undefined;
  return Math.max(0, Math.floor((limit - usage) / MIB));
}

/** The memory this agent's QEMUs may still take, in MiB: the least of MemAvailable and its cgroup's room; undefined when neither is known. */
export function availableMemoryMiB(read: (path: string) => string | undefined): number | undefined {
  const figures = [memAvailableMiB(read('/proc/meminfo') ?? ''), cgroupRoomMiB(read('/proc/self/cgroup') ?? '', read)].filter((n): n is number => n !== undefined);
  return figures.length ? Math.min(...figures) : undefined;
}

/** The decision for one incoming guest of `guestMiB`, given the host's available memory (MiB; undefined: unknown). */
export function decidePrealloc(setting: PreallocSetting, guestMiB: number, availableMiB: number | undefined): PreallocDecision {
  switch (setting) {
    case 'on':
      return { prealloc: true, reason: 'QEMU_PREALLOC_INCOMING=on' };
    case 'off':
      return { prealloc: false, reason: 'QEMU_PREALLOC_INCOMING=off' };
    case 'auto': {
      if (availableMiB === undefined) return { prealloc: false, reason: 'the host reports no MemAvailable in /proc/meminfo and the agent has no cgroup memory limit to go by' };
      const needed = guestMiB + PREALLOC_HEADROOM_MIB;
      return availableMiB >= needed
        ? { prealloc: true, reason: `${availableMiB} MiB available, ${needed} MiB needed (the guest's ${guestMiB} MiB and ${PREALLOC_HEADROOM_MIB} MiB of headroom)` }
        : {
            prealloc: false,
            reason: `only ${availableMiB} MiB available, ${needed} MiB needed (the guest's ${guestMiB} MiB and ${PREALLOC_HEADROOM_MIB} MiB of headroom): its pages fault in as the stream writes them, which lengthens the downtime`,
          };
    }
    default: {
      const never: never = setting;
      return never;
    }
  }
}

/**
 * How long a preallocating QEMU may take to open its QMP socket: the usual 10 s and 4 s per GiB, the rate
 * a nested 2-vCPU machine touched memory at with one thread (about 0.9 GiB/s) with a wide margin. QEMU
 * touches the pages with one thread per vCPU before it serves QMP.
 */
export const preallocStartTimeoutMs = (guestMiB: number): number => 10_000 + Math.ceil((guestMiB / 1024) * 4_000);
