import { HostIdSchema, hostIdFromName } from './common';

describe('hostIdFromName', () => {
  it.each([
    ['ip-10-0-1-2.ec2.internal', 'ip-10-0-1-2-ec2-internal'],
    ['Node-1.Example.COM', 'node-1-example-com'],
    ['host-a', 'host-a'],
    ['.weird..name_', 'weird-name'],
    ['a'.repeat(70) + '.x', 'a'.repeat(63)],
  ])('maps %s to a valid host id %s', (name, id) => {
    expect(hostIdFromName(name)).toBe(id);
    expect(HostIdSchema.safeParse(id).success).toBe(true);
  });

  it('leaves nothing valid when the name has no letters or digits, so the schema refuses it', () => {
    expect(HostIdSchema.safeParse(hostIdFromName('...')).success).toBe(false);
  });
});
