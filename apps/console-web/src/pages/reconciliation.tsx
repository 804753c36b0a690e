import type { ReconciliationFinding, ReconciliationReport } from '@flexmig/contracts';
import { firstOf } from '@flexmig/contracts/text';
import { useState } from 'react';
import { Alert, Button, DescriptionList, DescriptionListDescription, DescriptionListGroup, DescriptionListTerm, Label, PageSection, Title } from '@patternfly/react-core';
import { reportPage } from '../api';
import { formatDuration } from '../common';
import type { Column } from '../data-table';
import { FilterSelect, PagedTable } from '../paged-table';

const kindColor: Record<ReconciliationFinding['kind'], 'orange' | 'red' | 'grey'> = { orphaned: 'orange', missing: 'grey', 'split-brain': 'red' };
const kindText: Record<ReconciliationFinding['kind'], string> = {
  orphaned: 'an agent runs a VM inventory has no record of there',
  missing: 'inventory records a VM its host does not run',
  'split-brain': 'a VM runs on more than one host; the copies that are not inventory’s record were paused',
};

const KINDS = Object.keys(kindText) as ReconciliationFinding['kind'][];

/**
 * Where inventory and the agents disagree, as the last reconciliation pass saw it (docs/reconciliation.md):
 * the pass's summary, and its findings a page at a time, filtered by kind on the server (a host set that
 * fails can make thousands of findings at once).
 */
export function ReconciliationPage() {
  const [kind, setKind] = useState('');
  const [refresh, setRefresh] = useState(0);
  // the summary comes with each page: the one of the page shown
  const [r, setReport] = useState<ReconciliationReport | undefined>();
  const columns: Column<ReconciliationFinding>[] = [
    { title: 'Kind', cell: (f) => <Label color={kindColor[f.kind]}>{f.kind}</Label> },
    { title: 'VM', cell: (f) => <code>{f.vmId}</code> },
    { title: 'Host', cell: (f) => f.hostId },
    { title: 'Agent', cell: (f) => f.agentState ?? '—' },
    { title: 'Inventory', cell: (f) => (f.recordedHostId ? `${f.recordedState ?? ''} on ${f.recordedHostId}` : 'no record') },
    { title: 'Paused', cell: (f) => f.pausedHostIds.join(', ') || '—' },
    { title: 'Since', cell: (f) => new Date(f.firstSeenAt).toLocaleString() },
    { title: 'Detail', cell: (f) => f.detail },
  ];
  return (
    <PageSection>
      <Title headingLevel="h1">Reconciliation</Title>
      <p>
        Inventory compares what each agent reports it runs with what it records, every pass. A finding is never settled by guessing: {kindText.orphaned}; {kindText.missing};{' '}
        {kindText['split-brain']}.
      </p>
      <div style={{ margin: '0.75rem 0' }}>
        <Button variant="secondary" onClick={() => setRefresh((n) => n + 1)} isDisabled={!r}>
          Reload
        </Button>
      </div>
      {r && r.lastPassAt === null && <Alert variant="info" isInline title={`No reconciliation pass yet (one runs every ${formatDuration(r.intervalMs)})`} />}
      {r && r.lastPassAt !== null && (
        <>
          <DescriptionList isHorizontal aria-label="last pass">
            <DescriptionListGroup>
              <DescriptionListTerm>Last pass</DescriptionListTerm>
              <DescriptionListDescription>
                {new Date(r.lastPassAt).toLocaleString()} (every {formatDuration(r.intervalMs)})
              </DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
              <DescriptionListTerm>Hosts checked</DescriptionListTerm>
              <DescriptionListDescription>{r.hostsChecked}</DescriptionListDescription>
            </DescriptionListGroup>
            <DescriptionListGroup>
              <DescriptionListTerm>Hosts not judged</DescriptionListTerm>
              <DescriptionListDescription>
                {r.hostsUnknownCount === 0 ? 'none' : `${r.hostsUnknownCount} (down, or no current report of their VMs): ${firstOf(r.hostsUnknown, r.hostsUnknownCount, 20)}`}
              </DescriptionListDescription>
            </DescriptionListGroup>
          </DescriptionList>
        </>
      )}
      <FilterSelect label="kind" value={kind} values={KINDS} all="every kind" onChange={setKind} />
      <PagedTable
        key={kind}
        label="findings"
        load={(page) => reportPage<ReconciliationReport>('/api/v1/reconciliation', { kind: kind || undefined }, page)}
        refresh={refresh}
        onPage={(p) => setReport(p as ReconciliationReport)}
        columns={columns}
        rowKey={(f) => `${f.kind}/${f.vmId}/${f.hostId}`}
        empty={kind ? `No ${kind} findings` : 'No findings: the agents’ reports match inventory'}
      />
    </PageSection>
  );
}
