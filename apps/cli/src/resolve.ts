import type { Cluster, Vm } from '@flexmig/contracts';
import type { ApiClient } from './client';
import { isUuid } from './args';
import { CliError, ExitCode } from './exit-codes';

/** Commands take names or ids: a name is looked up in the list (refused when unknown or ambiguous). */
async function byNameOrId<T extends { id: string; name: string }>(api: ApiClient, what: string, route: string, key: string, listCmd: string): Promise<T> {
  if (isUuid(key)) return api.get<T>(`${route}/${key}`);
  const matches = (await api.list<T>(route)).filter((x) => x.name === key);
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) throw new CliError(`no ${what} is named ${key}: see \`flexmig ${listCmd}\` for names and ids`, ExitCode.Refused);
  throw new CliError(`${matches.length} ${what}s are named ${key} (${matches.map((m) => m.id).join(', ')}): give the id`, ExitCode.Refused);
}

export const findCluster = (api: ApiClient, key: string) => byNameOrId<Cluster>(api, 'cluster', '/api/v1/clusters', key, 'clusters');
export const findVm = (api: ApiClient, key: string) => byNameOrId<Vm>(api, 'VM', '/api/v1/vms', key, 'vms');
