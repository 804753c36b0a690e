import { CPUID_MAGIC, parseCpuidRecord } from './cpuid-record';

/** A record as the guest writes it (guest/workload.S, "CPUID record"). */
function record(seq: number, rows: number[][], magic = CPUID_MAGIC): Uint8Array {
  const b = Buffer.alloc(16 + rows.length * 24 + 32);
  b.writeUInt32LE(magic, 0);
  b.writeUInt32LE(seq, 4);
  b.writeUInt32LE(rows.length, 8);
  rows.forEach((r, i) => r.forEach((v, j) => b.writeUInt32LE(v, 16 + i * 24 + j * 4)));
  return new Uint8Array(b);
}

describe('parseCpuidRecord', () => {
  it('given a complete record, then its rows with leaf, subleaf and the four registers', () => {
    const r = parseCpuidRecord(record(4, [[0, 0, 0xb, 0x756e6547, 0x6c65746e, 0x49656e69], [0x80000001, 0, 0, 0, 1, 0x28100800]]));
    expect(r).toEqual({
      state: 'complete',
      seq: 4,
      rows: [
        { leaf: 0, subleaf: 0, eax: 0xb, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 },
        { leaf: 0x80000001, subleaf: 0, eax: 0, ebx: 0, ecx: 1, edx: 0x28100800 },
      ],
    });
  });

  it('given an odd sequence, then the guest is writing it and no rows are returned', () => {
    expect(parseCpuidRecord(record(5, [[0, 0, 1, 2, 3, 4]]))).toEqual({ state: 'writing', seq: 5 });
  });

  it('given no magic (the guest has not sampled yet, or is not the workload guest), then absent', () => {
    expect(parseCpuidRecord(record(2, [[0, 0, 1, 2, 3, 4]], 0))).toEqual({ state: 'absent' });
    expect(parseCpuidRecord(new Uint8Array(4))).toEqual({ state: 'absent' });
  });

  it('given a row count the boot sector could never hold, then MALFORMED_CPUID', () => {
    const b = Buffer.from(record(2, [[0, 0, 1, 2, 3, 4]]));
    b.writeUInt32LE(1000, 8);
    expect(() => parseCpuidRecord(new Uint8Array(b))).toThrow(expect.objectContaining({ code: 'MALFORMED_CPUID' }));
  });
});
