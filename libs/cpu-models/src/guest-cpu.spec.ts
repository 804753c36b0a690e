import { getBaseline } from './baselines';
import { compareGuestCpu, compareGuestCpuid } from './guest-cpu';
import { synthCpuid } from './test-helpers';

const westmere = getBaseline('Westmere').features;

describe('compareGuestCpu: what a guest sees against its baseline', () => {
  it('given exactly the baseline, then ok with nothing missing, extra or excepted', () => {
    const c = compareGuestCpu({ baseline: 'westmere', seen: westmere });
    expect(c).toMatchObject({ baseline: 'Westmere', ok: true, missing: [], extra: [], exceptions: [] });
    expect(c.seen).toEqual([...westmere].sort());
  });

  it('given a baseline feature the guest lacks and one it should not see, then both are named and not ok', () => {
    const seen = [...westmere.filter((f) => f !== 'aes'), 'avx'];
    const c = compareGuestCpu({ baseline: 'Westmere', seen });
    expect(c).toMatchObject({ ok: false, missing: ['aes'], extra: ['avx'] });
  });

  it('given hypervisor-supplied and OS-controlled bits either way, then they are exceptions with their reason, not failures', () => {
    const seen = [...westmere, 'hypervisor', 'x2apic', 'osxsave'];
    const c = compareGuestCpu({ baseline: 'Westmere', seen });
    expect(c.ok).toBe(true);
    expect(c.exceptions).toEqual([
      { feature: 'hypervisor', seen: true, reason: 'hypervisor-supplied' },
      { feature: 'osxsave', seen: true, reason: 'os-controlled' },
      { feature: 'x2apic', seen: true, reason: 'hypervisor-supplied' },
    ]);
    // a baseline that has a hypervisor-supplied bit: the guest may lack it
    const snb = getBaseline('SandyBridge').features;
    expect(snb).toContain('tsc-deadline');
    const lacking = compareGuestCpu({ baseline: 'SandyBridge', seen: snb.filter((f) => f !== 'tsc-deadline') });
    expect(lacking).toMatchObject({ ok: true, missing: [], exceptions: [{ feature: 'tsc-deadline', seen: false, reason: 'hypervisor-supplied' }] });
  });

  it('given vme missing, then only a guest under TCG is excused (QEMU cannot present it there)', () => {
    const seen = westmere.filter((f) => f !== 'vme');
    expect(compareGuestCpu({ baseline: 'Westmere', seen })).toMatchObject({ ok: false, missing: ['vme'] });
    expect(compareGuestCpu({ baseline: 'Westmere', seen, accel: 'kvm' })).toMatchObject({ ok: false, missing: ['vme'] });
    expect(compareGuestCpu({ baseline: 'Westmere', seen, accel: 'tcg' })).toMatchObject({
      ok: true,
      missing: [],
      exceptions: [{ feature: 'vme', seen: false, reason: 'tcg-cannot-present' }],
    });
  });

  it('given a psABI level, then the bits its QEMU model always presents are exceptions', () => {
    const v2 = getBaseline('x86-64-v2');
    const c = compareGuestCpu({ baseline: 'x86-64-v2', seen: [...v2.features, ...v2.presentedExtra!] });
    expect(c.ok).toBe(true);
    expect(c.exceptions.map((e) => e.reason)).toEqual(v2.presentedExtra!.filter((f) => !v2.features.includes(f)).map(() => 'presented-by-model'));
  });

  it('given an expected list (host-passthrough), then it compares with that list instead of a catalog baseline', () => {
    const c = compareGuestCpu({ baseline: 'host-passthrough', expected: ['sse2', 'avx'], seen: ['sse2', 'aes'] });
    expect(c).toMatchObject({ baseline: 'host-passthrough', ok: false, missing: ['avx'], extra: ['aes'] });
  });

  it('given the baseline MSR features, then they are unchecked, never missing', () => {
    const spr = getBaseline('SapphireRapids');
    const c = compareGuestCpu({ baseline: 'SapphireRapids', seen: spr.features });
    expect(c.ok).toBe(true);
    expect(c.unchecked).toEqual([...spr.msrFeatures].sort());
  });
});

describe('compareGuestCpuid: from the raw rows the guest executed', () => {
  it('given rows of exactly the baseline, then ok, with the vendor from leaf 0', () => {
    const c = compareGuestCpuid('Westmere', synthCpuid('GenuineIntel', [...westmere, 'hypervisor']));
    expect(c).toMatchObject({ vendor: 'Intel', ok: true, missing: [], extra: [] });
  });

  it('given a sample without leaf 7, then leaf-7 features are unchecked, not missing', () => {
    const hsw = getBaseline('Haswell-noTSX').features;
    const rows = synthCpuid('GenuineIntel', hsw).filter((r) => r.leaf !== 7);
    const c = compareGuestCpuid('Haswell-noTSX', rows);
    expect(c.missing).toEqual([]);
    expect(c.unchecked).toEqual(expect.arrayContaining(['avx2', 'bmi1', 'bmi2', 'erms', 'fsgsbase', 'smep']));
  });

  it('given a leaf above the maximum the guest reports, then its features count as observed absent', () => {
    const hsw = getBaseline('Haswell-noTSX').features;
    const rows = synthCpuid('GenuineIntel', hsw).map((r) => (r.leaf === 0 ? { ...r, eax: 6 } : r));
    const c = compareGuestCpuid('Haswell-noTSX', rows);
    expect(c.ok).toBe(false);
    expect(c.missing).toEqual(expect.arrayContaining(['avx2', 'bmi1']));
  });
});
