import type { ServiceName } from '../config';

/**
 * Which service owns which `/api/v1` path, as each service's controllers declare them (and as the Helm
 * chart's ingress will route). First match wins: a cluster's migration settings are the scheduler's, the
 * rest of /clusters is inventory's. The console's own routes (live streams, the merged OpenAPI document)
 * are matched by Nest before the proxy sees a request. apps/console/e2e checks every path of every
 * service's OpenAPI document against this table.
 */
const table: ReadonlyArray<{ path: RegExp; owner: ServiceName }> = [
  { path: /^\/api\/v1\/clusters\/[^/]+\/migration-settings(\/|$)/, owner: 'scheduler' },
  { path: /^\/api\/v1\/(clusters|hosts|vms|reconciliation)(\/|$)/, owner: 'inventory' },
  { path: /^\/api\/v1\/(migrations|evacuations)(\/|$)/, owner: 'scheduler' },
  { path: /^\/api\/v1\/cpu(\/|$)/, owner: 'cpu-compat' },
];

/** The top-level collections, for the message of a path nobody owns. */
export const routedCollections = ['clusters', 'hosts', 'vms', 'reconciliation', 'migrations', 'evacuations', 'cpu'];

/**
 * The service that owns `path` (no query string), or undefined. A path with a `.` or `..` segment
 * (plain or percent-encoded) is owned by nobody: it would mean one thing here and maybe another there.
 */
export function ownerOf(path: string): ServiceName | undefined {
  const segments = path.split('/');
  if (segments.some((s) => /^(\.|%2e){1,2}$/i.test(s))) return undefined;
  return table.find((r) => r.path.test(path))?.owner;
}
