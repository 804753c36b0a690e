import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { encodeCursor } from '@flexmig/persistence';
import { findingCursor, findingKeyOf } from './findings-page';

describe('a page of reconciliation findings: its cursor', () => {
  const key = { kind: 'split-brain' as const, vmId: '0b7d5a8e-2f43-4c55-8a0e-3f9d1e6c7b11', hostId: 'host-a-01' };

  it('given the key of a finding, then its cursor names that key again, and is a valid list cursor', () => {
    const cursor = findingCursor(key);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(cursor.length).toBeLessThanOrEqual(200); // PageCursorSchema's limit, with the longest host id
    expect(findingKeyOf(cursor)).toEqual(key);
    expect(findingCursor({ ...key, hostId: 'h'.repeat(63) }).length).toBeLessThanOrEqual(200);
  });

  it.each([
    ['another list\'s cursor (a host id)', encodeCursor('host-a-01')],
    ['a kind that is not one', encodeCursor(`stray/${key.vmId}/${key.hostId}`)],
    ['a VM id that is no uuid', encodeCursor(`missing/not-a-uuid/${key.hostId}`)],
    ['a host id that is not one', encodeCursor(`missing/${key.vmId}/Host_A`)],
    ['a fourth part', encodeCursor(`missing/${key.vmId}/${key.hostId}/x`)],
    ['no version', Buffer.from(`missing/${key.vmId}/${key.hostId}`).toString('base64url')],
  ])('given %s, then VALIDATION_FAILED saying to pass nextCursor as given', (_what, cursor) => {
    let error: unknown;
    try {
      findingKeyOf(cursor);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FlexmigError);
    expect((error as FlexmigError).code).toBe(ErrorCode.ValidationFailed);
    expect((error as FlexmigError).message).toMatch(/not one this list gave/);
  });
});
