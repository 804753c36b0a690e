import { HOSTS_UNKNOWN_LISTED, ReconciliationReportSchema, unknownHostsOfPass } from './reconciliation';

describe('the hosts a reconciliation pass could not judge, as a report gives them', () => {
  it('counts all of them and names the first HOSTS_UNKNOWN_LISTED by id, whatever the order the pass found them in', () => {
    const ids = Array.from({ length: 1_500 }, (_, i) => `host-${String(1_500 - i).padStart(4, '0')}`);
    const r = unknownHostsOfPass(ids);
    expect(r.hostsUnknownCount).toBe(1_500);
    expect(r.hostsUnknown).toHaveLength(HOSTS_UNKNOWN_LISTED);
    expect(r.hostsUnknown[0]).toBe('host-0001');
    expect(r.hostsUnknown.at(-1)).toBe(`host-0${HOSTS_UNKNOWN_LISTED}`);
    expect(ids[0]).toBe('host-1500'); // the pass's own list is left as it was
  });

  it('names every one of a few, and none of none', () => {
    expect(unknownHostsOfPass(['b', 'a'])).toEqual({ hostsUnknownCount: 2, hostsUnknown: ['a', 'b'] });
    expect(unknownHostsOfPass([])).toEqual({ hostsUnknownCount: 0, hostsUnknown: [] });
  });

  it('a report that names more than HOSTS_UNKNOWN_LISTED is not a report', () => {
    const report = { lastPassAt: null, intervalMs: 10_000, hostsChecked: 0, items: [], nextCursor: null };
    const ok = unknownHostsOfPass(Array.from({ length: 500 }, (_, i) => `h${i}`));
    expect(ReconciliationReportSchema.safeParse({ ...report, ...ok }).success).toBe(true);
    expect(ReconciliationReportSchema.safeParse({ ...report, hostsUnknownCount: 500, hostsUnknown: Array.from({ length: 101 }, (_, i) => `h${i}`) }).success).toBe(false);
  });
});
