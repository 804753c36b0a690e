import { useEffect, useMemo, useState } from 'react';
import type { EvacuationView, Host, HostListItem, Vm } from '@flexmig/contracts';
import { Alert, Button, PageSection, Switch, Title } from '@patternfly/react-core';
import { list, post, put } from '../api';
import { describe, formatMiB, LoadState, StateLabel, useLoad } from '../common';
import { DataTable, type Column } from '../data-table';
import { Link, navigate } from '../router';

export function HostsPage() {
  const hosts = useLoad(() => list<HostListItem>('/api/v1/hosts'));
  // each host carries its VM count; only a server before that is asked for every VM, to count them here
  const vms = useLoad(() => (hosts.data?.some((h) => h.vmCount === undefined) ? list<Vm>('/api/v1/vms') : Promise.resolve([])), [hosts.data]);
  const [error, setError] = useState<string | undefined>();
  // A maintenance change is shown as asked while its request is in flight (and the switch is disabled),
  // then as the server confirmed it until the reloaded list arrives: a second click never acts on a stale row.
  const [requested, setRequested] = useState<Record<string, boolean>>({});
  const [confirmed, setConfirmed] = useState<Record<string, boolean>>({});
  useEffect(() => setConfirmed({}), [hosts.data]);
  const counted = useMemo(() => {
    const m = new Map<string, number>();
    for (const v of vms.data ?? []) m.set(v.hostId, (m.get(v.hostId) ?? 0) + 1);
    return m;
  }, [vms.data]);
  const vmCount = (h: HostListItem) => h.vmCount ?? counted.get(h.id) ?? 0;

  const setMaintenance = async (h: HostListItem, on: boolean) => {
    setError(undefined);
    setRequested((r) => ({ ...r, [h.id]: on }));
    try {
      const updated = await put<Host>(`/api/v1/hosts/${encodeURIComponent(h.id)}/maintenance`, { maintenance: on });
      setConfirmed((c) => ({ ...c, [h.id]: updated?.maintenance ?? on }));
      hosts.reload();
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
  const evacuate = async (h: HostListItem) => {
    setError(undefined);
    try {
      const e = await post<EvacuationView>('/api/v1/evacuations', { hostId: h.id });
      navigate(`/evacuations/${e.id}`);
    } catch (e) {
      setError(`evacuation of ${h.id}: ${describe(e)}`);
    }
  };

  const columns: Column<HostListItem>[] = [
    { title: 'Host', cell: (h) => <span style={{ whiteSpace: 'nowrap' }}>{h.id}</span>, text: (h) => `${h.id} ${h.hostname}` },
    { title: 'Highest mode', cell: (h) => h.maxImcMode ?? '(none)', text: (h) => h.maxImcMode ?? '' },
    { title: 'CPU', cell: (h) => h.cpu.modelName, text: (h) => `${h.cpu.vendor} ${h.cpu.modelName}` },
    { title: 'State', cell: (h) => <StateLabel state={h.state} />, text: (h) => h.state },
    {
      title: 'Maintenance',
      cell: (h) => <Switch id={`maintenance-${h.id}`} aria-label={`maintenance of ${h.id}`} isChecked={requested[h.id] ?? confirmed[h.id] ?? h.maintenance} isDisabled={h.id in requested} onChange={(_e, on) => void setMaintenance(h, on)} />,
      text: (h) => (h.maintenance ? 'maintenance' : ''),
    },
    { title: 'VMs', cell: (h) => <Link to={`/vms?host=${encodeURIComponent(h.id)}`}>{String(vmCount(h))}</Link> },
    { title: 'vCPUs used', cell: (h) => `${h.allocatedVcpus} / ${h.capacityVcpus} (${h.vcpus} × ${h.cpuAllocationRatio})` },
    { title: 'Memory used', cell: (h) => `${formatMiB(h.allocatedMemoryMiB)} / ${formatMiB(h.capacityMemoryMiB)} (${formatMiB(h.memoryMiB)} × ${h.memoryAllocationRatio})` },
    {
      title: '',
      cell: (h) => (
        <Button variant="link" isInline isDanger onClick={() => void evacuate(h)} isDisabled={!vmCount(h)}>
          Evacuate
        </Button>
      ),
    },
  ];
  return (
    <PageSection>
      <Title headingLevel="h1">Hosts</Title>
      <LoadState loaded={hosts} what="hosts" />
      {error && <Alert variant="danger" isInline title="Refused">{error}</Alert>}
      {hosts.data && <DataTable label="hosts" rows={hosts.data} columns={columns} rowKey={(h) => h.id} empty="No hosts: start an agent (it registers its host)" />}
    </PageSection>
  );
}
