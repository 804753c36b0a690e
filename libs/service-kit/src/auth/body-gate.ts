import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthSettings } from './auth-settings';
import type { HttpRoute } from './routes';
import { allows, type RouteAccess } from './roles';
import { bearerToken, type TokenVerifier } from './token-verifier';

/** A route's path as a regular expression (`:param` is one segment). */
const pattern = (path: string) => new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\/:[^/]+/g, '/[^/]+')}/?$`);

/**
 * Whether a request may have its body read: only when the route is public, unknown (404 follows), or the
 * request carries a token that verifies and has the route's role. Otherwise the body is left unread (its
 * content type is dropped, so no body parser takes it; Node discards the unread bytes), the guard answers
 * 401 or 403 as for any request, and an anonymous caller's body is never parsed: no 400 for its malformed
 * JSON, no 413 for its size, nothing learnt before authentication.
 * A verified token is kept on the request for the guard (`preVerified`), so it is verified once.
 */
export function bodyGate(routes: HttpRoute[], settings: AuthSettings | undefined, verifier: TokenVerifier | undefined) {
  const guarded = routes.flatMap((r) => (r.access && r.access !== 'public' ? [{ method: r.method.toUpperCase(), re: pattern(r.path), access: r.access }] : []));
  /** The role a request's route needs (undefined: a public or unknown route, whose body may be read). */
  const accessOf = (method: string, path: string): Exclude<RouteAccess, 'public'> | undefined => guarded.find((g) => (g.method === 'ALL' || g.method === method) && g.re.test(path))?.access;
  return (req: IncomingMessage & { preVerified?: unknown }, _res: ServerResponse, next: () => void): void => {
    if (settings?.mode !== 'on' || !verifier) return next();
    const path = (req.url ?? '/').split('?')[0];
    const access = accessOf(req.method ?? 'GET', path);
    if (!access) return next();
    const token = bearerToken(req.headers.authorization);
    const leaveUnread = () => delete req.headers['content-type'];
    if (!token) {
      leaveUnread(); // no token: the guard answers 401
      return next();
    }
    verifier.verify(token).then(
      (principal) => {
        req.preVerified = principal;
        if (!allows(principal.roles, access)) leaveUnread(); // the guard answers 403
        next();
      },
      () => {
        leaveUnread(); // the guard refuses it, with the reason
        next();
      },
    );
  };
}
