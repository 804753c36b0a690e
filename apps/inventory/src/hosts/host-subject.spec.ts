import { ErrorCode, HostHeartbeat, RegisterHost } from '@flexmig/contracts';
import { assertSubjectNamesHost } from './host-subject';

describe('a host speaks only for itself: the subject (vouched for by NATS permissions) must name the body\'s host', () => {
  it.each([RegisterHost.subject, HostHeartbeat.subject])('given %s on the host\'s own subject, then it is accepted', (template) => {
    const subject = `flexmig.${template.replace('{hostId}', 'host-a')}`;
    expect(() => assertSubjectNamesHost(template, subject, 'host-a')).not.toThrow();
  });

  it.each([RegisterHost.subject, HostHeartbeat.subject])("given %s from host-a's subject claiming host-c, then it is refused", (template) => {
    const subject = `flexmig.${template.replace('{hostId}', 'host-a')}`;
    expect(() => assertSubjectNamesHost(template, subject, 'host-c')).toThrow(expect.objectContaining({ code: ErrorCode.ValidationFailed }));
  });

  it('given a subject that does not fit the template, then it is refused', () => {
    expect(() => assertSubjectNamesHost(RegisterHost.subject, 'flexmig.inventory.host.register', 'host-a')).toThrow();
    expect(() => assertSubjectNamesHost(RegisterHost.subject, undefined, 'host-a')).toThrow();
  });
});
