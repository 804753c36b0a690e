import { ErrorCode, FlexmigError, subjectParams } from '@flexmig/contracts';

/**
 * NATS permissions vouch for the subject (an agent may publish only under its own host id), not for the
 * body: a host's registration or heartbeat counts only when both name the same host.
 */
export function assertSubjectNamesHost(template: string, subject: string | undefined, hostId: string): void {
  const fromSubject = subject === undefined ? undefined : subjectParams(template, subject)?.hostId;
  if (fromSubject !== hostId) {
    throw new FlexmigError(ErrorCode.ValidationFailed, `the subject ${subject} names host ${fromSubject ?? '(none)'}, the message host ${hostId}: refused`, {
      subject,
      hostId,
    });
  }
}
