import { SetMetadata, applyDecorators } from '@nestjs/common';
import { ApiBearerAuth, ApiExtension } from '@nestjs/swagger';
import { BEARER_SCHEME, ROLE_EXTENSION, type RoleName } from '@flexmig/contracts';
import { ApiErrorResponse } from '../zod';

// The three roles (ROLES, in @flexmig/contracts: DESIGN.md "Trust"): `viewer` reads, `operator` runs VMs,
// migrations, evacuations and maintenance, `admin` changes clusters, IMC modes and settings.
/** What a route requires: a role, or `public` (health and metrics: probes and scrapers carry no token). */
export type RouteAccess = RoleName | 'public';

/** Metadata key of a route handler's access; read by the guard, the start-up check and the tests. */
export const ROUTE_ACCESS = 'flexmig:route-access';

const rank: Record<RoleName, number> = { viewer: 1, operator: 2, admin: 3 };

/** True when a token with `granted` roles may do what `required` allows (admin ⊇ operator ⊇ viewer). */
export function allows(granted: readonly string[], required: RoleName): boolean {
  return granted.some((g) => g in rank && rank[g as RoleName] >= rank[required]);
}

/**
 * The role a route requires. Every HTTP route declares one (or `@Public()`); a route that declares
 * neither stops its service from starting (`assertEveryRouteDeclaresAccess`).
 */
export const Role = (role: RoleName) =>
  applyDecorators(
    SetMetadata(ROUTE_ACCESS, role),
    ApiBearerAuth(BEARER_SCHEME),
    ApiExtension(ROLE_EXTENSION, role),
    ApiErrorResponse(401),
    ApiErrorResponse(403, `FORBIDDEN: the token's roles do not include ${role}`),
  );

/** A route anyone may call without a token: only health probes and metrics. */
export const Public = () => SetMetadata(ROUTE_ACCESS, 'public' satisfies RouteAccess);
