import { eventRefusal } from './define';
import { HostDown, VmStarted } from './events';

describe('eventRefusal: whether an event stored for later can ever be published', () => {
  it('given data its contract accepts, then nothing', () => {
    expect(eventRefusal(HostDown.type, { hostId: 'host-a', lastHeartbeatAt: '2026-12-04T03:00:00.000Z' })).toBeUndefined();
  });

  it('given a type no contract defines (a later version wrote it), then it says so', () => {
    expect(eventRefusal('host.renamed', {})).toBe('unknown event type host.renamed');
  });

  it('given data outside its contract, then it names each field and what is wrong', () => {
    const why = eventRefusal(VmStarted.type, { vmId: 'not-a-uuid', hostId: 'host-a' });
    expect(why).toMatch(/^vmId: .+; cpuBaseline: .+$/);
  });

  it('given no object at all, then the data as a whole is named', () => {
    expect(eventRefusal(HostDown.type, null)).toMatch(/^\(data\): /);
  });
});
