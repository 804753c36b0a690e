import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { afterPlacingAgain } from './evacuation-follow-up';
import type { EvacuationItemRecord } from './evacuation.entity';
import { askFor, MigrationRequester } from './migration-requester';

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const refused: EvacuationItemRecord = { vmId: id(1), name: 'vm-1', migrationId: id(101), reason: null, code: null, earlierMigrationIds: [id(100)] };
const answering = (fn: () => Promise<{ id: string }>): MigrationRequester => ({ request: fn });

describe('placing a VM again after step 1 refused its target', () => {
  it('records the new migration and keeps the refused one, oldest first', async () => {
    const asked = await askFor(answering(async () => ({ id: id(102) })), id(1), 'alice');
    expect(afterPlacingAgain(refused, asked)).toEqual({ ...refused, migrationId: id(102), reason: null, code: null, earlierMigrationIds: [id(100), id(101)] });
  });

  it('follows a migration of the VM that another request started meanwhile', async () => {
    const active = new FlexmigError(ErrorCode.MigrationActive, 'VM is already being migrated', { vmId: id(1), migrationId: id(103) });
    const asked = await askFor(
      answering(async () => Promise.reject(active)),
      id(1),
      'alice',
    );
    expect(afterPlacingAgain(refused, asked)).toMatchObject({ migrationId: id(103), reason: null, earlierMigrationIds: [id(100), id(101)] });
  });

  it('records why when no host can take the VM now', async () => {
    const none = new FlexmigError(ErrorCode.InsufficientCapacity, 'no host can take VM vm-1: host-c: not enough free memory', { vmId: id(1) });
    const asked = await askFor(answering(async () => Promise.reject(none)), id(1), 'alice');
    expect(afterPlacingAgain(refused, asked)).toEqual({
      ...refused,
      migrationId: null,
      reason: 'no host can take VM vm-1: host-c: not enough free memory',
      code: 'INSUFFICIENT_CAPACITY',
      earlierMigrationIds: [id(100), id(101)],
    });
  });

  it('keeps the record as it is when the failure was of the moment, so that the next look asks again', async () => {
    const down = new FlexmigError(ErrorCode.Unavailable, 'inventory did not answer');
    const asked = await askFor(answering(async () => Promise.reject(down)), id(1), 'alice');
    expect(asked).toMatchObject({ migrationId: null, code: 'UNAVAILABLE', retryable: true });
    expect(afterPlacingAgain(refused, asked)).toBeNull();
  });

  it('records a failure that is not a FlexmigError as INTERNAL, and does not ask again for it', async () => {
    const asked = await askFor(answering(async () => Promise.reject(new TypeError('x is undefined'))), id(1), 'alice');
    expect(afterPlacingAgain(refused, asked)).toMatchObject({ migrationId: null, reason: 'x is undefined', code: 'INTERNAL' });
  });

  it('passes who asked for the evacuation on to the new migration', async () => {
    const request = jest.fn(async () => ({ id: id(104) }));
    await askFor({ request }, id(1), 'alice');
    expect(request).toHaveBeenCalledWith(id(1), 'alice', undefined);
  });
});
