import { CanActivate, ExecutionContext, Injectable, createParamDecorator } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ErrorCode, FlexmigError } from '@flexmig/contracts';
import type { AuthSettings } from './auth-settings';
import { allows, ROUTE_ACCESS, type RouteAccess } from './roles';
import { bearerToken, type Principal, TokenVerifier } from './token-verifier';

/** The caller when AUTH=off: recorded as such in audit fields, allowed everything. */
export const UNAUTHENTICATED_CALLER: Principal = { sub: 'anonymous (AUTH=off)', roles: ['admin'] };

interface AuthenticatedRequest {
  headers: Record<string, string | string[] | undefined>;
  principal?: Principal;
  /** The caller as the body gate verified it, before the body was read (bodyGate). */
  preVerified?: Principal;
}

/**
 * The HTTP side of "who may do what" (DESIGN.md "Trust"), installed on every service by `configureHttp`:
 * each route's `@Role(...)` against the bearer token's roles. A route that declares nothing is refused
 * (the start-up check stops that from ever being served; this is the second lock). NATS handlers are not
 * its business: NATS identities confine those.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly verifier?: TokenVerifier;

  constructor(
    private readonly reflector: Reflector,
    private readonly settings: AuthSettings | undefined,
    verifier?: TokenVerifier,
  ) {
    if (settings?.mode === 'on') this.verifier = verifier ?? new TokenVerifier(settings);
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const access = this.reflector.get<RouteAccess | undefined>(ROUTE_ACCESS, context.getHandler());
    if (access === 'public') return true;
    if (access === undefined) {
      throw new FlexmigError(ErrorCode.Forbidden, 'this route declares no role, so nobody may call it', { reason: 'no-role-declared' });
    }
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    if (this.settings?.mode === 'off') {
      request.principal = UNAUTHENTICATED_CALLER;
      return true;
    }
    if (!this.verifier) throw new FlexmigError(ErrorCode.Forbidden, 'this service has no HTTP authentication configured', { reason: 'no-auth-configured' });
    const header = request.headers.authorization;
    const token = bearerToken(header);
    if (!token) {
      throw new FlexmigError(ErrorCode.Unauthenticated, 'this API needs a bearer token: send the header "authorization: Bearer <token>" (docs/security.md)', {
        reason: header ? 'not-a-bearer-token' : 'no-token',
      });
    }
    const principal = request.preVerified ?? (await this.verifier.verify(token));
    if (!allows(principal.roles, access)) {
      throw new FlexmigError(
        ErrorCode.Forbidden,
        `this needs the ${access} role; the token of ${principal.sub} has ${principal.roles.length ? principal.roles.join(', ') : 'no role'}`,
        { required: access, roles: principal.roles },
      );
    }
    request.principal = principal;
    return true;
  }
}

/** The verified caller of an HTTP route (`@Caller() caller: Principal`): audit fields come from here, never from the body. */
export const Caller = createParamDecorator((_: unknown, context: ExecutionContext): Principal => {
  const principal = context.switchToHttp().getRequest<AuthenticatedRequest>().principal;
  if (!principal) throw new FlexmigError(ErrorCode.Internal, 'the route asked for its caller but no caller was authenticated');
  return principal;
});
