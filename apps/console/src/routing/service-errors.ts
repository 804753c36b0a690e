import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import { type ServiceName, serviceUrlVariable } from '../config';

/** A service the console needs cannot be reached: which, where, why, and what to check. */
export function serviceUnreachable(owner: ServiceName, base: URL, cause: string): FlexmigError {
  return new FlexmigError(
    ErrorCode.Unavailable,
    `${owner} at ${base.origin} cannot be reached (${cause}): it serves this path. Check that ${owner} runs ` +
      `and that ${serviceUrlVariable[owner]} points at it, then retry.`,
    { service: owner, url: base.origin, cause },
  );
}
