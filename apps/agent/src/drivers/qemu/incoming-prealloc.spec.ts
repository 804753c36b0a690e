import { PREALLOC_HEADROOM_MIB, availableMemoryMiB, cgroupRoomMiB, decidePrealloc, memAvailableMiB, preallocStartTimeoutMs } from './incoming-prealloc';

const GiB = 2 ** 30;
/** A reader of the given files only. */
const files = (f: Record<string, string>) => (path: string) => f[path];

describe('incoming-prealloc', () => {
  describe('memAvailableMiB', () => {
    it("reads /proc/meminfo's MemAvailable in MiB, rounded down", () => {
      const meminfo = 'MemTotal:       25165824 kB\nMemFree:        20000000 kB\nMemAvailable:   22020097 kB\nBuffers:          123456 kB\n';
      expect(memAvailableMiB(meminfo)).toBe(21504);
    });

    it('undefined without the line (a kernel before 3.14), or with a line of another field that merely contains the name', () => {
      expect(memAvailableMiB('MemTotal:       25165824 kB\nMemFree:        20000000 kB\n')).toBeUndefined();
      expect(memAvailableMiB('XMemAvailable:   1024 kB\n')).toBeUndefined();
    });
  });

  describe('cgroupRoomMiB: what the memory limit of the agent\'s cgroup leaves', () => {
    it('cgroup v2: memory.max less memory.current under the path the process is in', () => {
      const read = files({ '/sys/fs/cgroup/kubepods/pod1/agent/memory.max': `${8 * GiB}\n`, '/sys/fs/cgroup/kubepods/pod1/agent/memory.current': `${3 * GiB}\n` });
      expect(cgroupRoomMiB('0::/kubepods/pod1/agent\n', read)).toBe(5 * 1024);
    });

    it("cgroup v2 in a container's own namespace: the files at the mount's root", () => {
      const read = files({ '/sys/fs/cgroup/memory.max': `${2 * GiB}\n`, '/sys/fs/cgroup/memory.current': `${GiB + 2 ** 20 * 0.5}\n` });
      expect(cgroupRoomMiB('0::/\n', read)).toBe(1023);
    });

    it('cgroup v2 without a limit ("max"), or no files at all: undefined', () => {
      expect(cgroupRoomMiB('0::/a\n', files({ '/sys/fs/cgroup/a/memory.max': 'max\n', '/sys/fs/cgroup/a/memory.current': '123\n' }))).toBeUndefined();
      expect(cgroupRoomMiB('0::/a\n', files({}))).toBeUndefined();
      expect(cgroupRoomMiB('', files({}))).toBeUndefined();
    });

    it('cgroup v1 (beside the unified hierarchy): memory.limit_in_bytes less memory.usage_in_bytes; "unlimited" (about 2^63) is no limit', () => {
      const cg = '9:name=systemd:/\n4:memory:/docker/abc\n0::/\n';
      expect(cgroupRoomMiB(cg, files({ '/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes': `${4 * GiB}`, '/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes': `${GiB}` }))).toBe(3 * 1024);
      expect(cgroupRoomMiB(cg, files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712', '/sys/fs/cgroup/memory/memory.usage_in_bytes': `${GiB}` }))).toBeUndefined();
      // the controller listed with others on one hierarchy
      expect(cgroupRoomMiB('3:cpu,memory:/x\n', files({ '/sys/fs/cgroup/memory/x/memory.limit_in_bytes': `${GiB}`, '/sys/fs/cgroup/memory/x/memory.usage_in_bytes': '0' }))).toBe(1024);
    });

    it('usage above the limit leaves nothing, not a negative room', () => {
      expect(cgroupRoomMiB('0::/a\n', files({ '/sys/fs/cgroup/a/memory.max': `${GiB}`, '/sys/fs/cgroup/a/memory.current': `${2 * GiB}` }))).toBe(0);
    });
  });

  it('availableMemoryMiB: the least of MemAvailable and the cgroup\'s room, either alone, or undefined', () => {
    const meminfo = `MemAvailable:   ${20 * 1024 * 1024} kB\n`;
    const limited = { '/proc/self/cgroup': '0::/pod\n', '/sys/fs/cgroup/pod/memory.max': `${6 * GiB}`, '/sys/fs/cgroup/pod/memory.current': `${GiB}` };
    expect(availableMemoryMiB(files({ '/proc/meminfo': meminfo, ...limited }))).toBe(5 * 1024);
    expect(availableMemoryMiB(files({ '/proc/meminfo': meminfo, '/proc/self/cgroup': '0::/\n' }))).toBe(20 * 1024);
    expect(availableMemoryMiB(files(limited))).toBe(5 * 1024);
    expect(availableMemoryMiB(files({}))).toBeUndefined();
  });

  describe('decidePrealloc', () => {
    it('auto: touches the memory when the guest and the headroom are available, exactly at the bound too', () => {
      const d = decidePrealloc('auto', 2048, 2048 + PREALLOC_HEADROOM_MIB);
      expect(d.prealloc).toBe(true);
      expect(d.reason).toBe(`${2048 + PREALLOC_HEADROOM_MIB} MiB available, ${2048 + PREALLOC_HEADROOM_MIB} MiB needed (the guest's 2048 MiB and ${PREALLOC_HEADROOM_MIB} MiB of headroom)`);
    });

    it('auto: leaves the pages to fault in one MiB short of that, and says what it costs', () => {
      const d = decidePrealloc('auto', 2048, 2047 + PREALLOC_HEADROOM_MIB);
      expect(d.prealloc).toBe(false);
      expect(d.reason).toMatch(/^only 3071 MiB available, 3072 MiB needed .*: its pages fault in as the stream writes them, which lengthens the downtime$/);
    });

    it('auto without a MemAvailable figure: does not touch (an overcommitted host must not be pushed into swap on a guess)', () => {
      expect(decidePrealloc('auto', 512, undefined)).toEqual({ prealloc: false, reason: 'the host reports no MemAvailable in /proc/meminfo and the agent has no cgroup memory limit to go by' });
    });

    it('on and off: as told, whatever is available', () => {
      expect(decidePrealloc('on', 65536, 100).prealloc).toBe(true);
      expect(decidePrealloc('on', 512, undefined).prealloc).toBe(true);
      expect(decidePrealloc('off', 512, 1_000_000).prealloc).toBe(false);
    });
  });

  it('the start timeout grows with the memory QEMU touches before it answers QMP: 10 s, and 4 s per GiB', () => {
    expect(preallocStartTimeoutMs(0)).toBe(10_000);
    expect(preallocStartTimeoutMs(512)).toBe(12_000);
    expect(preallocStartTimeoutMs(65536)).toBe(10_000 + 64 * 4_000);
  });
});
