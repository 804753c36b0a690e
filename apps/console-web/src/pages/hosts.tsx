import { useState } from 'react';
import type { Cluster, EvacuationView, Host, HostListItem } from '@flexmig/contracts';
import { Alert, Button, FormSelect, FormSelectOption, PageSection, SearchInput, Switch, Title, Toolbar, ToolbarContent, ToolbarItem } from '@patternfly/react-core';
import { ApiError, get, list, onePage, post, put, type OnePage } from '../api';
import { describe, formatMiB, StateLabel, useLoad } from '../common';
import type { Column } from '../data-table';
import { PagedTable } from '../paged-table';
import { Link, navigate, useLocation } from '../router';

/** A host as a row shows it: from a page of hosts (its CPU's features named by digest) or read alone (with them). */
type HostRow = HostListItem | Host;

/** One host by its id, as a page of one (none when there is no such host). */
async function hostById(id: string): Promise<OnePage<HostRow>> {
  try {
    return { items: [await get<Host>(`/api/v1/hosts/${encodeURIComponent(id)}`)], nextCursor: null };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { items: [], nextCursor: null };
    throw e;
  }
}

/**
 * The hosts a page at a time, by id, as the server pages them: of one cluster, or one host found by its id.
 * A fleet of 1,000 hosts is never read whole; each host carries its VM count.
 */
export function HostsPage() {
  const clusters = useLoad(() => list<Cluster>('/api/v1/clusters'));
  // `?cluster=`: the clusters page links to a cluster's hosts
  const { query } = useLocation();
  const [clusterId, setClusterId] = useState(query.get('cluster') ?? '');
  const [typed, setTyped] = useState('');
  const [hostId, setHostId] = useState('');
  const [refresh, setRefresh] = useState(0);
  const [error, setError] = useState<string | undefined>();
  // A maintenance change is shown as asked while its request is in flight (and the switch is disabled),
  // then as the server confirmed it until the page read again arrives: a second click never acts on a stale row.
  const [requested, setRequested] = useState<Record<string, boolean>>({});
  const [confirmed, setConfirmed] = useState<Record<string, boolean>>({});

  const setMaintenance = async (h: HostRow, on: boolean) => {
    setError(undefined);
    setRequested((r) => ({ ...r, [h.id]: on }));
    try {
      const updated = await put<Host>(`/api/v1/hosts/${encodeURIComponent(h.id)}/maintenance`, { maintenance: on });
      setConfirmed((c) => ({ ...c, [h.id]: updated?.maintenance ?? on }));
      setRefresh((n) => n + 1);
    } catch (e) {
      setError(`maintenance of ${h.id}: ${describe(e)}`);
    } finally {
      setRequested((r) => {
        const rest = { ...r };
        delete rest[h.id];
        return rest;
      });
    }
  };
  const evacuate = async (h: HostRow) => {
    setError(undefined);
    try {
      const e = await post<EvacuationView>('/api/v1/evacuations', { hostId: h.id });
      navigate(`/evacuations/${e.id}`);
    } catch (e) {
      setError(`evacuation of ${h.id}: ${describe(e)}`);
    }
  };

  const columns: Column<HostRow>[] = [
    { title: 'Host', cell: (h) => <span style={{ whiteSpace: 'nowrap' }}>{h.id}</span> },
    { title: 'Highest mode', cell: (h) => h.maxImcMode ?? '(none)' },
    { title: 'CPU', cell: (h) => h.cpu.modelName },
    { title: 'State', cell: (h) => <StateLabel state={h.state} /> },
    {
      title: 'Maintenance',
      cell: (h) => <Switch id={`maintenance-${h.id}`} aria-label={`maintenance of ${h.id}`} isChecked={requested[h.id] ?? confirmed[h.id] ?? h.maintenance} isDisabled={h.id in requested} onChange={(_e, on) => void setMaintenance(h, on)} />,
    },
    // an inventory older than the VM count per host does not send it: the link still lists them
    { title: 'VMs', cell: (h) => <Link to={`/vms?host=${encodeURIComponent(h.id)}`}>{h.vmCount === undefined ? 'list' : String(h.vmCount)}</Link> },
    { title: 'vCPUs used', cell: (h) => `${h.allocatedVcpus} / ${h.capacityVcpus} (${h.vcpus} × ${h.cpuAllocationRatio})` },
    { title: 'Memory used', cell: (h) => `${formatMiB(h.allocatedMemoryMiB)} / ${formatMiB(h.capacityMemoryMiB)} (${formatMiB(h.memoryMiB)} × ${h.memoryAllocationRatio})` },
    {
      title: '',
      cell: (h) => (
        <Button variant="link" isInline isDanger onClick={() => void evacuate(h)} isDisabled={h.vmCount === 0}>
          Evacuate
        </Button>
      ),
    },
  ];
  const load = (page: { limit: number; cursor?: string }) => (hostId ? hostById(hostId) : onePage<HostRow>('/api/v1/hosts', { clusterId: clusterId || undefined }, page));
  return (
    <PageSection>
      <Title headingLevel="h1">Hosts</Title>
      <Toolbar>
        <ToolbarContent>
          <ToolbarItem>
            <SearchInput aria-label="find a host by id" placeholder="Find a host by its id (Enter)" value={typed} onChange={(_e, v) => setTyped(v)} onSearch={(_e, v) => setHostId(v.trim())} onClear={() => (setTyped(''), setHostId(''))} />
          </ToolbarItem>
          <ToolbarItem>
            <FormSelect aria-label="cluster" value={clusterId} onChange={(_e, v) => setClusterId(v)} isDisabled={!!hostId} style={{ minWidth: 220 }}>
              <FormSelectOption value="" label="every cluster" />
              {/* the URL's cluster (`?cluster=`) before the clusters have loaded, or one they do not name */}
              {clusterId && !clusters.data?.some((c) => c.id === clusterId) && <FormSelectOption value={clusterId} label={clusters.data ? `${clusterId} (not listed)` : clusterId} />}
              {(clusters.data ?? []).map((c) => (
                <FormSelectOption key={c.id} value={c.id} label={c.name} />
              ))}
            </FormSelect>
          </ToolbarItem>
        </ToolbarContent>
      </Toolbar>
      {clusters.error && <Alert variant="warning" isInline title="Clusters not listed">{clusters.error}; every cluster's hosts are shown</Alert>}
      {error && <Alert variant="danger" isInline title="Refused">{error}</Alert>}
      <PagedTable
        key={`${hostId}/${clusterId}`}
        label="hosts"
        load={load}
        refresh={refresh}
        onPage={() => setConfirmed({})}
        columns={columns}
        rowKey={(h) => h.id}
        empty={hostId ? `No host ${hostId}` : 'No hosts: start an agent (it registers its host)'}
      />
    </PageSection>
  );
}
