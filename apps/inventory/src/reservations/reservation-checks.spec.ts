import { randomUUID } from 'node:crypto';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { checkNoOtherMigration, checkNotOnTarget, checkRelocationReserved, checkSameCluster, checkSameReservation } from './reservation-checks';

const codeOf = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as FlexmigError).code;
  }
};

describe('reservation checks (inventory ties reservations and relocations to one migration)', () => {
  const migrationId = randomUUID();
  const vmId = randomUUID();
  const held = { migrationId, vmId, hostId: 'host-b' };

  it('given a relocation without its reservation (forged), then RESERVATION_MISMATCH', () => {
    expect(codeOf(() => checkRelocationReserved(null, { migrationId, vmId, toHostId: 'host-b' }))).toBe(ErrorCode.ReservationMismatch);
  });
  it('given a relocation to another host or of another VM than reserved, then RESERVATION_MISMATCH', () => {
    expect(codeOf(() => checkRelocationReserved(held, { migrationId, vmId, toHostId: 'host-c' }))).toBe(ErrorCode.ReservationMismatch);
    expect(codeOf(() => checkRelocationReserved(held, { migrationId, vmId: randomUUID(), toHostId: 'host-b' }))).toBe(ErrorCode.ReservationMismatch);
  });
  it('given the relocation the reservation was made for, then it passes', () => {
    expect(codeOf(() => checkRelocationReserved(held, { migrationId, vmId, toHostId: 'host-b' }))).toBeUndefined();
  });
  it('given a repeat of a reservation, then it must name the same VM and host', () => {
    expect(codeOf(() => checkSameReservation(held, { vmId, hostId: 'host-b' }))).toBeUndefined();
    expect(codeOf(() => checkSameReservation(held, { vmId, hostId: 'host-c' }))).toBe(ErrorCode.ReservationMismatch);
  });
  it('given a reservation on the host the VM runs on, then UNABLE_TO_MIGRATE_TO_SELF', () => {
    expect(codeOf(() => checkNotOnTarget({ id: vmId, hostId: 'host-a' }, 'host-a'))).toBe(ErrorCode.UnableToMigrateToSelf);
  });
  it("given another migration's reservation of the same VM, then MIGRATION_ACTIVE naming it; its own repeat passes", () => {
    expect(codeOf(() => checkNoOtherMigration(randomUUID(), vmId, [held]))).toBe(ErrorCode.MigrationActive);
    expect(codeOf(() => checkNoOtherMigration(migrationId, vmId, [held]))).toBeUndefined();
  });
  it('given a host of another cluster, then refused', () => {
    expect(codeOf(() => checkSameCluster({ id: vmId, clusterId: 'c1' }, { id: 'host-x', clusterId: 'c2' }))).toBe(ErrorCode.ReservationMismatch);
  });
});
