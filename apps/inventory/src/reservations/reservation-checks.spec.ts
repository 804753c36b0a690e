import { randomUUID } from 'node:crypto';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { checkCpuAsVerified, checkNoOtherMigration, checkNotOnTarget, checkRelocationReserved, checkSameCluster, checkSameReservation } from './reservation-checks';

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

  describe('the CPUs a reservation binds must be those its verdict was about', () => {
    const verified = { cpuBaseline: 'IvyBridge', vmFeatures: null, hostVendor: 'GenuineIntel', hostFeatures: ['avx', 'sse4.2'] };
    const vm = { id: vmId, cpuBaseline: 'IvyBridge', cpuFeatures: null };
    const host = { id: 'host-b', cpuVendor: 'GenuineIntel', cpuFeatures: ['avx', 'sse4.2'] };
    const refusal = (f: () => void) => {
      try {
        f();
        return undefined;
      } catch (e) {
        return e as FlexmigError;
      }
    };

    it('given the same VM baseline and host CPU as verified, then it passes', () => {
      expect(codeOf(() => checkCpuAsVerified(verified, vm, { ...host, cpuFeatures: [...host.cpuFeatures] }))).toBeUndefined();
    });
    it('given a VM whose baseline changed after the verdict (IMC), then a retryable CONFLICT naming the VM', () => {
      const e = refusal(() => checkCpuAsVerified(verified, { ...vm, cpuBaseline: 'Westmere' }, host));
      expect(e).toMatchObject({ code: ErrorCode.Conflict, retryable: true });
      expect(e!.message).toContain(`CPU baseline of VM ${vmId}`);
    });
    it('given a host-passthrough VM whose features differ from those verified, then CONFLICT', () => {
      const passthrough = { ...verified, cpuBaseline: 'host-passthrough', vmFeatures: ['avx'] };
      expect(codeOf(() => checkCpuAsVerified(passthrough, { ...vm, cpuBaseline: 'host-passthrough', cpuFeatures: ['avx'] }, host))).toBeUndefined();
      expect(codeOf(() => checkCpuAsVerified(passthrough, { ...vm, cpuBaseline: 'host-passthrough', cpuFeatures: ['avx', 'avx2'] }, host))).toBe(ErrorCode.Conflict);
      expect(codeOf(() => checkCpuAsVerified(passthrough, { ...vm, cpuBaseline: 'host-passthrough', cpuFeatures: null }, host))).toBe(ErrorCode.Conflict);
    });
    it('given a host that re-registered with another CPU after the verdict, then a retryable CONFLICT naming the host', () => {
      const lost = refusal(() => checkCpuAsVerified(verified, vm, { ...host, cpuFeatures: ['sse4.2'] }));
      expect(lost).toMatchObject({ code: ErrorCode.Conflict, retryable: true });
      expect(lost!.message).toContain('CPU of host host-b');
      expect(codeOf(() => checkCpuAsVerified(verified, vm, { ...host, cpuVendor: 'AuthenticAMD' }))).toBe(ErrorCode.Conflict);
    });
  });
});
