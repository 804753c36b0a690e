import { countBy, countsOf, cpuName, firstOf, groupsOf, lacksText } from './text';

describe('firstOf: a long list on one line', () => {
  const ids = Array.from({ length: 30 }, (_, i) => `h${i}`);

  it('names every item when they fit', () => {
    expect(firstOf(['a', 'b'])).toBe('a, b');
    expect(firstOf(ids.slice(0, 10))).toBe(ids.slice(0, 10).join(', '));
  });

  it('names the first ones and counts the rest', () => {
    expect(firstOf(ids)).toBe(`${ids.slice(0, 10).join(', ')} and 20 more`);
    expect(firstOf(ids, ids.length, 3)).toBe('h0, h1, h2 and 27 more');
  });

  it('adds up to the total an answer counts when it names fewer items than that', () => {
    // a report that counts 25 hosts and names its first 5: the line says 5 ids and 20 more, not 15 more
    expect(firstOf(ids.slice(0, 5), 25)).toBe('h0, h1, h2, h3, h4 and 20 more');
    expect(firstOf(ids.slice(0, 12), 25)).toBe(`${ids.slice(0, 10).join(', ')} and 15 more`);
  });

  it('an empty list: nothing, or only the count', () => {
    expect(firstOf([])).toBe('');
    expect(firstOf([], 7)).toBe('7');
  });
});

describe('groupsOf: items that read alike, together', () => {
  it('makes one group per key, in the order the keys first appear, each with its items in order', () => {
    const hosts = [
      { id: 'h1', cpu: 'Skylake' },
      { id: 'h2', cpu: 'Westmere' },
      { id: 'h3', cpu: 'Skylake' },
      { id: 'h4', cpu: 'Westmere' },
      { id: 'h5', cpu: 'EPYC' },
    ];
    expect(groupsOf(hosts, (h) => h.cpu).map((g) => [g.key, g.items.map((h) => h.id)])).toEqual([
      ['Skylake', ['h1', 'h3']],
      ['Westmere', ['h2', 'h4']],
      ['EPYC', ['h5']],
    ]);
  });

  it('keeps every item once: 1,000 hosts of three CPUs are three groups that add up to 1,000', () => {
    const cpus = ['Skylake', 'Westmere', 'EPYC'];
    const hosts = Array.from({ length: 1000 }, (_, i) => ({ id: `h${i}`, cpu: cpus[(i * 7) % 3]! }));
    const groups = groupsOf(hosts, (h) => h.cpu);
    expect(groups.map((g) => g.key)).toEqual(['Skylake', 'Westmere', 'EPYC']);
    expect(groups.flatMap((g) => g.items).map((h) => h.id).sort()).toEqual(hosts.map((h) => h.id).sort());
  });

  it('nothing to group: no groups', () => {
    expect(groupsOf([], String)).toEqual([]);
  });
});

describe('countsOf: how many of each', () => {
  it('counts each value, the most first, ties in the order they first appear', () => {
    expect(countsOf(['up', 'down', 'up', 'maintenance', 'up', 'down'])).toBe('3 up, 2 down, 1 maintenance');
    expect(countsOf(['down', 'up'])).toBe('1 down, 1 up');
    expect(countsOf([])).toBe('');
  });
});

describe('lacksText: what a host lacks for a mode', () => {
  it('names the features, the first ones when asked for fewer, or says the vendor differs', () => {
    expect(lacksText({ missing: ['avx2', 'bmi2', 'fma'], vendorMismatch: false })).toBe('lacks avx2, bmi2, fma');
    expect(lacksText({ missing: ['avx2', 'bmi2', 'fma'], vendorMismatch: false }, 2)).toBe('lacks avx2, bmi2 and 1 more');
    expect(lacksText({ missing: ['avx2'], vendorMismatch: true })).toBe('another vendor');
    expect(lacksText({ missing: [], vendorMismatch: false })).toBe('');
  });
});

describe('cpuName: a CPU as people read it', () => {
  it('puts the vendor before the model name unless the name starts with it', () => {
    expect(cpuName({ vendor: 'Intel', modelName: 'Intel(R) Xeon(R) CPU X5670 @ 2.93GHz' })).toBe('Intel(R) Xeon(R) CPU X5670 @ 2.93GHz');
    expect(cpuName({ vendor: 'AMD', modelName: 'EPYC 7763 64-Core Processor' })).toBe('AMD EPYC 7763 64-Core Processor');
    expect(cpuName({ vendor: 'AMD', modelName: 'AMD EPYC 7763 64-Core Processor' })).toBe('AMD EPYC 7763 64-Core Processor');
    expect(cpuName({ vendor: '', modelName: 'QEMU Virtual CPU' })).toBe('QEMU Virtual CPU');
  });
});

describe('countBy: how many share each key', () => {
  it('counts per key, the keys in the order they first appear', () => {
    expect([...countBy(['h1', 'h2', 'h1', 'h3', 'h1'], (h) => h)]).toEqual([['h1', 3], ['h2', 1], ['h3', 1]]);
    expect(countBy([], String).size).toBe(0);
  });
});
