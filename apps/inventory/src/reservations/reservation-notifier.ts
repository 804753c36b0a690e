import { Injectable, Logger } from '@nestjs/common';
import { type MessageOf, type Reservation, ReservationNotice } from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';

/**
 * Tells a migration's two agents of step 1's reservation as soon as it is committed, and of its release
 * (`ReservationNotice`, on each host's own subject; only inventory may publish there): their entry steps
 * (the target's 2, the source's 3) take it instead of asking `inventory.reservation.get`, one round trip
 * and one PostgreSQL read fewer each (issue 11). Sent before step 1's reply, so it is there before the
 * scheduler's next command in all but a rare race; a notice lost or late costs the agent only the question
 * it asks without one.
 */
@Injectable()
export class ReservationNotifier {
  private readonly log = new Logger(ReservationNotifier.name);

  constructor(private readonly bus: NatsBus) {}

  /** After step 1's commit: to the target and to the source, with the address the source may stream to. */
  reserved(reservation: Reservation, sourceHostId: string, targetMigrationAddress: string | null): void {
    if (!targetMigrationAddress) return; // nothing a source could stream to: its entry step asks, and refuses
    for (const hostId of [reservation.hostId, sourceHostId]) this.send(hostId, { migrationId: reservation.migrationId, reservation, targetMigrationAddress });
  }

  /** After the release's commit: an agent drops what it was told and asks, should an entry step still come. */
  released(migrationId: string, hostIds: readonly string[]): void {
    for (const hostId of new Set(hostIds)) this.send(hostId, { migrationId, reservation: null, targetMigrationAddress: null });
  }

  private send(hostId: string, notice: MessageOf<typeof ReservationNotice>): void {
    try {
      this.bus.publish(ReservationNotice, notice, { hostId });
    } catch (e) {
      this.log.warn(`migration ${notice.migrationId}: the reservation's notice to host ${hostId} was not sent (its agent will ask instead): ${(e as Error).message}`);
    }
  }
}
