/**
 * The bearer tokens of the HTTP APIs (docs/security.md, "HTTP"), as every party that mints or checks one
 * must agree on them: the services, `flexmig auth init`, the scripts and the tests. A JWT signed with
 * HS256 and the shared secret carries `iss` and `aud` TOKEN_ISSUER / TOKEN_AUDIENCE, `sub` (who, for
 * audit fields), `roles` (names below) and `exp`; an OIDC issuer's token carries its own `iss`.
 */
export const TOKEN_ISSUER = 'flexmig';
export const TOKEN_AUDIENCE = 'flexmig';

/** Each allowed everything the one before it is: `viewer` reads, `operator` runs, `admin` changes clusters and settings. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type RoleName = (typeof ROLES)[number];

/** Name of the bearer scheme in the OpenAPI documents, and the extension naming each operation's role. */
export const BEARER_SCHEME = 'bearer';
export const ROLE_EXTENSION = 'x-flexmig-role';
