import { residentGuestBytes } from './guest-residency';

const MiB = 1024 * 1024;
const mapping = (header: string, sizeKb: number, rssKb: number) => `${header}\nSize:             ${sizeKb} kB\nKernelPageSize:        4 kB\nRss:              ${rssKb} kB\nPss:              ${rssKb} kB\n`;

describe('residentGuestBytes', () => {
  const smaps = [
    mapping('55d0c0000000-55d0c0a00000 r-xp 00000000 fd:01 1234   /usr/bin/qemu-system-x86_64', 10240, 9000),
    mapping('7f0000000000-7f0020000000 rw-p 00000000 00:00 0 ', 524288 + 2048, 4096), // the guest's 512 MiB (+2 MiB alignment)
    mapping('7f1000000000-7f1040000000 rw-p 00000000 00:00 0 ', 1048576, 60000), // TCG's code buffer: larger, not the RAM
    mapping('7f2000000000-7f2000100000 rw-p 00000000 00:00 0 ', 1024, 800), // heap
    mapping('7f3000000000-7f3020000000 rw-s 00000000 00:05 99   /dev/shm/other', 524288, 524288), // a file mapping of the size
  ].join('');

  it('given QEMU\'s mappings, then it is the Rss of the anonymous mapping the size of the guest memory', () => {
    expect(residentGuestBytes(smaps, 512 * MiB)).toBe(4096 * 1024);
  });

  it('given no anonymous mapping the size of the guest memory (another backend), then it cannot tell', () => {
    expect(residentGuestBytes(smaps, 8192 * MiB)).toBeUndefined();
    expect(residentGuestBytes('', 512 * MiB)).toBeUndefined();
  });

  it('never says more than the memory', () => {
    expect(residentGuestBytes(mapping('7f0000000000-7f0020000000 rw-p 00000000 00:00 0', 524288 + 2048, 524288 + 2048), 512 * MiB)).toBe(512 * MiB);
  });
});
