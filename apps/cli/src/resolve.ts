import { type Cluster, ErrorCode, NameSchema, type Vm } from '@flexmig/contracts';
import type { ApiClient } from './client';
import { isUuid } from './args';
import { CliError, ExitCode } from './exit-codes';

/**
 * Commands take names or ids: a name is looked up in the list (refused when unknown or ambiguous). With
 * `byName` the server is asked for that name's items only (`?name=`); a server before that filter refuses
 * the query (400), and then every item is read and compared here. A key that is neither an id nor a valid
 * name (`NameSchema`, which every server has checked names against since the first) names nothing: it is
 * refused without a request, rather than read every item to find none.
 */
async function byNameOrId<T extends { id: string; name: string }>(api: ApiClient, what: string, route: string, key: string, listCmd: string, byName = false): Promise<T> {
  if (isUuid(key)) return api.get<T>(`${route}/${key}`);
  const valid = NameSchema.safeParse(key);
  if (!valid.success) {
    throw new CliError(`${JSON.stringify(key)} is neither a ${what}'s id nor a name (${valid.error.issues[0]?.message ?? 'not a valid name'}): see \`flexmig ${listCmd}\` for names and ids`, ExitCode.Refused);
  }
  const named = byName ? await api.list<T>(route, { name: key }).catch((e: unknown) => (isQueryRefused(e) ? undefined : Promise.reject(e))) : undefined;
  const matches = (named ?? (await api.list<T>(route))).filter((x) => x.name === key);
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) throw new CliError(`no ${what} is named ${key}: see \`flexmig ${listCmd}\` for names and ids`, ExitCode.Refused);
  throw new CliError(`${matches.length} ${what}s are named ${key} (${matches.map((m) => m.id).join(', ')}): give the id`, ExitCode.Refused);
}

export const findCluster = (api: ApiClient, key: string) => byNameOrId<Cluster>(api, 'cluster', '/api/v1/clusters', key, 'clusters');
export const findVm = (api: ApiClient, key: string) => byNameOrId<Vm>(api, 'VM', '/api/v1/vms', key, 'vms', true);

/** A 400 VALIDATION_FAILED: the query (an older server's strict one, without `name`) was refused. */
const isQueryRefused = (e: unknown): boolean => e instanceof CliError && (e.body as { code?: string } | undefined)?.code === ErrorCode.ValidationFailed;
