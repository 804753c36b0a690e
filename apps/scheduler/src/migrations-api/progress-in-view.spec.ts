import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { MigrationPolicySchema, MigrationProgressMessage, type MigrationProgress } from '@flexmig/contracts';
import { createSaga, step } from '@flexmig/saga';
import type { MigrationEntity } from '../entities';
import { MigrationsService } from './migrations.service';

/**
 * The live progress in a migration's view: the latest sample of the migration's own hosts, taken only from
 * a subject that names the same migration and host as its body (NATS permissions vouch for the subject: an
 * agent publishes only under its own host).
 */
describe("a migration's view: its live progress", () => {
  const prefix = 'fm';
  const setup = () => {
    let onSample: ((sample: MigrationProgress, subject: string) => void) | undefined;
    const bus = {
      subscribe: (contract: unknown, handler: typeof onSample) => {
        expect(contract).toBe(MigrationProgressMessage);
        onSample = handler;
      },
    };
    const service = new MigrationsService(...([undefined, bus, ...Array(8).fill(undefined)] as unknown as ConstructorParameters<typeof MigrationsService>));
    const ref = { migrationId: randomUUID(), vmId: randomUUID(), sourceHostId: 'host-a', targetHostId: 'host-b' };
    const now = Date.now();
    const saga = step(createSaga(ref, now), { type: 'start' }, now).state;
    const row = {
      id: ref.migrationId,
      vmId: ref.vmId,
      sourceHostId: ref.sourceHostId,
      targetHostId: ref.targetHostId,
      state: saga.phase,
      saga,
      policy: MigrationPolicySchema.parse({}),
      placement: null,
      prediction: null,
      requestedBy: 'alice',
      createdAt: new Date(now),
      updatedAt: new Date(now),
      finishedAt: null,
    } as unknown as MigrationEntity;
    const publish = (subjectIds: { migrationId: string; hostId: string }, body: { migrationId: string; hostId: string }) =>
      onSample!(
        {
          ...body,
          vmId: ref.vmId,
          step: 3,
          pass: 1,
          percent: 40,
          totalBytes: 100,
          transferredBytes: 40,
          remainingBytes: 60,
          dirtyRateBytesPerSec: 0,
          bandwidthBytesPerSec: 1,
          expectedDowntimeMs: 1,
          throttlePct: 0,
          at: new Date(now).toISOString(),
        },
        `${prefix}.progress.migration.${subjectIds.migrationId}.${subjectIds.hostId}`,
      );
    return { service, row, publish, id: ref.migrationId };
  };

  it("shows the latest sample of the migration's source", () => {
    const { service, row, publish, id } = setup();
    expect(service.view(row).progress).toBeNull();
    publish({ migrationId: id, hostId: 'host-a' }, { migrationId: id, hostId: 'host-a' });
    expect(service.view(row).progress).toMatchObject({ migrationId: id, hostId: 'host-a', percent: 40 });
  });

  it('ignores a sample whose body names another host or migration than its subject', () => {
    const { service, row, publish, id } = setup();
    // host-x may publish only under host-x: a body that speaks for the source
    publish({ migrationId: id, hostId: 'host-x' }, { migrationId: id, hostId: 'host-a' });
    // another migration's subject, this migration in the body
    publish({ migrationId: randomUUID(), hostId: 'host-a' }, { migrationId: id, hostId: 'host-a' });
    expect(service.view(row).progress).toBeNull();
  });

  it("ignores a sample of a host that is neither the migration's source nor its target, which does not displace the source's", () => {
    const { service, row, publish, id } = setup();
    publish({ migrationId: id, hostId: 'host-x' }, { migrationId: id, hostId: 'host-x' });
    expect(service.view(row).progress).toBeNull();
    publish({ migrationId: id, hostId: 'host-a' }, { migrationId: id, hostId: 'host-a' });
    publish({ migrationId: id, hostId: 'host-x' }, { migrationId: id, hostId: 'host-x' });
    expect(service.view(row).progress).toMatchObject({ hostId: 'host-a' });
  });
});
