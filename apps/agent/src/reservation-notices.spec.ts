import { randomUUID } from 'node:crypto';
import { ReservationNotices } from './reservation-notices';

describe('ReservationNotices: the reservations inventory told this agent of, until an entry step takes one', () => {
  let now = 1_000_000;
  const clock = () => now;
  const notice = (migrationId = randomUUID()) => ({
    migrationId,
    reservation: { migrationId, vmId: randomUUID(), hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date(now).toISOString() },
    targetMigrationAddress: 'dst.example:49152',
  });
  beforeEach(() => {
    now = 1_000_000;
  });

  it('gives the reservation and the address once, then nothing (a second entry step asks inventory)', () => {
    const notices = new ReservationNotices(30_000, 10, clock);
    const n = notice();
    notices.note(n);
    expect(notices.take(n.migrationId)).toEqual({ reservation: n.reservation, targetMigrationAddress: 'dst.example:49152' });
    expect(notices.take(n.migrationId)).toBeUndefined();
    expect(notices.take(randomUUID())).toBeUndefined();
  });

  it('gives nothing once the notice is keptMs old', () => {
    const notices = new ReservationNotices(30_000, 10, clock);
    const n = notice();
    notices.note(n);
    now += 30_000;
    expect(notices.take(n.migrationId)).toBeUndefined();
  });

  it('forgets a reservation inventory released, and one released before it was noted stays unknown', () => {
    const notices = new ReservationNotices(30_000, 10, clock);
    const n = notice();
    notices.note(n);
    notices.note({ migrationId: n.migrationId, reservation: null, targetMigrationAddress: null });
    expect(notices.take(n.migrationId)).toBeUndefined();
    expect(notices.size).toBe(0);
  });

  it('a repeated notice (step 1 asked again) replaces the first and keeps one entry', () => {
    const notices = new ReservationNotices(30_000, 10, clock);
    const n = notice();
    notices.note(n);
    now += 20_000;
    notices.note(n);
    now += 20_000; // 40 s after the first, 20 s after the repeat
    expect(notices.size).toBe(1);
    expect(notices.take(n.migrationId)?.reservation).toEqual(n.reservation);
  });

  it('holds at most `max`, dropping the oldest first, and drops expired ones as new ones come', () => {
    const notices = new ReservationNotices(30_000, 3, clock);
    const ns = [notice(), notice(), notice(), notice()];
    for (const n of ns) notices.note(n);
    expect(notices.size).toBe(3);
    expect(notices.take(ns[0]!.migrationId)).toBeUndefined();
    expect(notices.take(ns[3]!.migrationId)).toBeDefined();
    now += 31_000;
    notices.note(notice());
    expect(notices.size).toBe(1);
  });
});
