import { LeaseFence, LeaseNotHeld } from './lease-fence';

/** A monotonic clock the test moves: a frozen process wakes up with it far ahead. */
function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const ttl = 3_000;

describe('LeaseFence', () => {
  it('takes a quarter of the lease as its margin, at most 1 s', () => {
    expect(new LeaseFence(3_000).marginMs).toBe(750);
    expect(new LeaseFence(10_000).marginMs).toBe(1_000);
  });

  it('refuses a migration whose lease was never granted here', () => {
    const f = new LeaseFence(ttl, clock().now);
    expect(() => f.check('m-1')).toThrow(LeaseNotHeld);
    expect(() => f.check('m-1')).toThrow(/migration m-1: not sent, this replica does not hold its lease \(never granted here/);
  });

  it('holds a granted lease until TTL − margin after the statement was SENT, and not a moment longer', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now, 500);
    const sentAt = f.mark();
    c.advance(400); // PostgreSQL answered 400 ms later: its lease_until counts from after `sentAt`
    f.granted(['m-1'], sentAt);
    c.advance(ttl - 500 - 400 - 1);
    expect(() => f.check('m-1')).not.toThrow();
    expect(f.remainingMs('m-1')).toBe(1);
    c.advance(1);
    expect(() => f.check('m-1')).toThrow(/not renewed for 2500 ms/);
  });

  it('a renewal extends the lease from when it was sent', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now, 500);
    f.granted(['m-1'], f.mark());
    c.advance(2_000);
    f.renewed(['m-1'], f.mark());
    c.advance(2_000); // 4 s after the grant, 2 s after the renewal
    expect(() => f.check('m-1')).not.toThrow();
  });

  it('a frozen process (SIGSTOP) wakes up with its lease expired, even if a renewal reply was waiting for it', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now, 500);
    f.granted(['m-1'], f.mark());
    const renewalSentAt = f.mark(); // the renewal left just before the freeze...
    c.advance(ttl + 3_000); // ...the process is stopped for its lease + 3 s; the monotonic clock runs on
    f.renewed(['m-1'], renewalSentAt); // ...and its reply is read after SIGCONT: it counts from when it was sent
    expect(() => f.check('m-1')).toThrow(LeaseNotHeld);
  });

  it('a replica cut off from PostgreSQL stops renewing, and refuses before the lease can be claimed', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now);
    f.granted(['m-1'], f.mark());
    // no renewal gets through; another replica may claim once PostgreSQL's lease_until (≥ grant + TTL) has passed
    c.advance(ttl - f.marginMs);
    expect(() => f.check('m-1')).toThrow(LeaseNotHeld);
  });

  it('a renewal that did not renew a lease means it was lost, unless it was granted after the renewal was sent', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now, 500);
    f.granted(['lost', 'kept'], f.mark());
    c.advance(100);
    const renewalSentAt = f.mark();
    c.advance(10);
    f.granted(['claimed-meanwhile'], f.mark());
    c.advance(10);
    f.renewed(['kept'], renewalSentAt);
    expect(() => f.check('lost')).toThrow(/lost to another replica/);
    expect(() => f.check('kept')).not.toThrow();
    expect(() => f.check('claimed-meanwhile')).not.toThrow();
  });

  it('an older statement never shortens a lease a newer one granted', () => {
    const c = clock();
    const f = new LeaseFence(ttl, c.now, 500);
    const older = f.mark();
    c.advance(2_000);
    f.granted(['m-1'], f.mark());
    f.granted(['m-1'], older);
    c.advance(2_000);
    expect(() => f.check('m-1')).not.toThrow();
  });

  it('a released lease, or all of them, is refused at once', () => {
    const f = new LeaseFence(ttl, clock().now);
    f.granted(['m-1', 'm-2'], f.mark());
    f.release('m-1');
    expect(() => f.check('m-1')).toThrow(LeaseNotHeld);
    expect(() => f.check('m-2')).not.toThrow();
    f.releaseAll();
    expect(() => f.check('m-2')).toThrow(LeaseNotHeld);
  });
});
