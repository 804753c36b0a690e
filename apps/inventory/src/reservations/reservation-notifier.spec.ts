import { randomUUID } from 'node:crypto';
import { ReservationNotice } from '@flexmig/contracts';
import type { NatsBus } from '@flexmig/messaging';
import { ReservationNotifier } from './reservation-notifier';

describe("ReservationNotifier: step 1's reservation told to the migration's two agents", () => {
  const sent: { subject: string; message: unknown; hostId: string | undefined }[] = [];
  let failing = false;
  const bus = {
    publish: (contract: { subject: string }, message: unknown, params?: { hostId?: string }) => {
      if (failing) throw new Error('CONNECTION_CLOSED');
      sent.push({ subject: contract.subject, message, hostId: params?.hostId });
    },
  } as unknown as NatsBus;
  const notifier = new ReservationNotifier(bus);
  const migrationId = randomUUID();
  const reservation = { migrationId, vmId: randomUUID(), hostId: 'dst', memoryMiB: 1024, vcpus: 1, createdAt: new Date().toISOString() };
  beforeEach(() => {
    sent.length = 0;
    failing = false;
  });

  it('sends the reservation with the address to the target and to the source, each on its own subject', () => {
    notifier.reserved(reservation, 'src', 'dst.example:49152');
    const message = { migrationId, reservation, targetMigrationAddress: 'dst.example:49152' };
    expect(sent).toEqual([
      { subject: ReservationNotice.subject, message, hostId: 'dst' },
      { subject: ReservationNotice.subject, message, hostId: 'src' },
    ]);
    expect(ReservationNotice.message.safeParse(message).success).toBe(true);
  });

  it('sends nothing without an address (the agents ask, and a source refuses to stream)', () => {
    notifier.reserved(reservation, 'src', null);
    expect(sent).toEqual([]);
  });

  it('tells each host of a release once', () => {
    notifier.released(migrationId, ['dst', 'src', 'dst']);
    expect(sent.map((s) => [s.hostId, s.message])).toEqual([
      ['dst', { migrationId, reservation: null, targetMigrationAddress: null }],
      ['src', { migrationId, reservation: null, targetMigrationAddress: null }],
    ]);
  });

  it('a notice that cannot be sent does not fail step 1: the agents ask instead', () => {
    failing = true;
    expect(() => notifier.reserved(reservation, 'src', 'dst.example:49152')).not.toThrow();
  });
});
