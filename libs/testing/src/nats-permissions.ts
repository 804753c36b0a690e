import { errors, type NatsConnection, type PermissionViolationError, type QueuedIterator, type Status } from '@nats-io/transport-node';

/**
 * Resolves with the server's permissions violation for `subject` that `act` provokes on `nc`; fails after
 * `timeoutMs` without one. A refused request rejects too: the violation is what is checked, not `act`'s result.
 */
export async function permissionViolation(nc: NatsConnection, subject: string, act: () => unknown, timeoutMs = 3_000): Promise<PermissionViolationError> {
  const statuses = nc.status() as QueuedIterator<Status>;
  const seen = (async () => {
    for await (const s of statuses) {
      if (s.type === 'error' && s.error instanceof errors.PermissionViolationError && s.error.subject === subject) return s.error;
    }
    throw new Error(`no permissions violation for ${subject}`);
  })();
  const timer = setTimeout(() => statuses.stop(), timeoutMs);
  try {
    await Promise.resolve()
      .then(act)
      .catch(() => undefined);
    return await seen;
  } finally {
    clearTimeout(timer);
    statuses.stop();
  }
}
