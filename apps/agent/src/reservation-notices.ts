import { type GetReservation, type MessageOf, type ReplyOf, RESERVATION_NOTICE_KEPT_MS, type ReservationNotice } from '@flexmig/contracts';

/** What an entry step checks a migration against: inventory's answer about the reservation, noticed ahead or asked. */
export type HeldReservation = ReplyOf<typeof GetReservation>;

/** The most reservations kept unused: far more than one host's migrations at once. */
const MAX_KEPT = 4_096;

/**
 * The reservations inventory told this agent of (`ReservationNotice`, on this host's own subject), until the
 * agent's entry step of that migration takes one: the step then asks inventory nothing (one round trip fewer
 * in steps 2 and 3). A reservation is taken once, and only within `keptMs` of its notice; a release drops it.
 * Without one (a notice lost, late, or from before a restart) the entry step asks inventory as before, so
 * this holds nothing the step could not learn by asking: it is the same answer, sent ahead.
 */
export class ReservationNotices {
  /** By migration, in the order noted: the first is the oldest, so that expired ones leave from the front. */
  private readonly held = new Map<string, HeldReservation & { until: number }>();

  constructor(
    private readonly keptMs = RESERVATION_NOTICE_KEPT_MS,
    private readonly max = MAX_KEPT,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.held.size;
  }

  note(n: MessageOf<typeof ReservationNotice>): void {
    this.held.delete(n.migrationId);
    if (!n.reservation) return; // released: an entry step from now on asks, and finds none
    this.dropExpired();
    if (this.held.size >= this.max) this.held.delete(this.held.keys().next().value!);
    this.held.set(n.migrationId, { reservation: n.reservation, targetMigrationAddress: n.targetMigrationAddress, until: this.now() + this.keptMs });
  }

  /** The reservation noted for the migration, once; undefined when none was, or it is older than `keptMs`. */
  take(migrationId: string): HeldReservation | undefined {
    const h = this.held.get(migrationId);
    if (!h) return undefined;
    this.held.delete(migrationId);
    return h.until > this.now() ? { reservation: h.reservation, targetMigrationAddress: h.targetMigrationAddress } : undefined;
  }

  private dropExpired(): void {
    const now = this.now();
    for (const [id, h] of this.held) {
      if (h.until > now) return;
      this.held.delete(id);
    }
  }
}
