import { useEffect, useState } from 'react';
import type { EvacuationView, MigrationProgress } from '@flexmig/contracts';
import { Card, CardBody, CardTitle, PageSection, Title } from '@patternfly/react-core';
import { get, onePage, openStream } from '../api';
import { Bar, LoadState, StateLabel, useLoad } from '../common';
import { DataTable, type Column } from '../data-table';
import { PagedTable } from '../paged-table';
import { Link } from '../router';

export function EvacuationsPage() {
  const columns: Column<EvacuationView>[] = [
    { title: 'Evacuation', cell: (e) => <Link to={`/evacuations/${e.id}`}>{e.id.slice(0, 8)}</Link> },
    { title: 'Host', cell: (e) => e.hostId },
    { title: 'State', cell: (e) => <StateLabel state={e.state} /> },
    { title: 'VMs', cell: (e) => `${e.counts.moved} moved, ${e.counts.moving} moving, ${e.counts.failed} failed, ${e.counts.notMoved} not moved, of ${e.counts.total}` },
    { title: 'Created', cell: (e) => new Date(e.createdAt).toLocaleString() },
  ];
  return (
    <PageSection>
      <Title headingLevel="h1">Evacuations</Title>
      <p>Start one from the Hosts page (Evacuate): the host goes into maintenance and each of its VMs is migrated away.</p>
      {/* every evacuation ever run, newest first, one page at a time */}
      <PagedTable label="evacuations" load={(page) => onePage<EvacuationView>('/api/v1/evacuations', {}, page)} columns={columns} rowKey={(e) => e.id} empty="No evacuations" />
    </PageSection>
  );
}

/** One evacuation, live: per VM its outcome, and a progress bar while its migration copies memory. */
export function EvacuationPage({ id }: { id: string }) {
  const view = useLoad(() => get<EvacuationView>(`/api/v1/evacuations/${id}`), [id]);
  const [percent, setPercent] = useState<Record<string, number>>({});
  useEffect(() => {
    const s = openStream(`/api/v1/evacuations/${encodeURIComponent(id)}/events`, (m) => {
      if (m.event === 'migration.progress') {
        const p = m.data as MigrationProgress;
        setPercent((old) => ({ ...old, [p.migrationId]: p.percent }));
      } else view.reload();
    });
    return () => s.close();
  }, [id, view.reload]);
  const e = view.data;
  return (
    <PageSection>
      <Title headingLevel="h1">Evacuation of {e?.hostId ?? id}</Title>
      <LoadState loaded={view} what="the evacuation" />
      {e && (
        <Card>
          <CardTitle>
            <StateLabel state={e.state} /> {e.counts.moved} moved, {e.counts.moving} moving, {e.counts.failed} failed, {e.counts.notMoved} not moved, of {e.counts.total}
          </CardTitle>
          <CardBody>
            <Bar value={e.counts.total ? ((e.counts.moved + e.counts.failed + e.counts.notMoved) / e.counts.total) * 100 : 100} title="VMs done" state={e.state === 'running' ? undefined : e.state === 'completed' ? 'completed' : 'failed-needs-attention'} />
            <DataTable
              label="VMs of the evacuation"
              rows={e.vms}
              rowKey={(v) => v.vmId}
              empty="No VMs were on the host"
              columns={[
                { title: 'VM', cell: (v) => v.name, text: (v) => v.name },
                { title: 'Outcome', cell: (v) => v.outcome, text: (v) => v.outcome },
                { title: 'Migration', cell: (v) => (v.migrationId ? <Link to={`/migrations/${v.migrationId}`}>{v.migrationState ?? ''}</Link> : '') },
                { title: 'To', cell: (v) => v.targetHostId ?? '' },
                { title: 'Progress', cell: (v) => (v.outcome === 'moving' && v.migrationId ? <Bar value={percent[v.migrationId] ?? 0} title="memory copied" /> : v.outcome === 'moved' ? '100%' : '') },
                { title: 'Reason', cell: (v) => v.reason ?? '' },
              ]}
            />
          </CardBody>
        </Card>
      )}
    </PageSection>
  );
}

