import type { ReconciliationFinding, ReconciliationReport } from '@flexmig/contracts';
import { firstOf } from '@flexmig/contracts/text';
import { Alert, Button, DescriptionList, DescriptionListDescription, DescriptionListGroup, DescriptionListTerm, Label, PageSection, Title } from '@patternfly/react-core';
import { report } from '../api';
import { formatDuration, LoadState, useLoad } from '../common';
import { DataTable, type Column } from '../data-table';

const kindColor: Record<ReconciliationFinding['kind'], 'orange' | 'red' | 'grey'> = { orphaned: 'orange', missing: 'grey', 'split-brain': 'red' };
const kindText: Record<ReconciliationFinding['kind'], string> = {
  orphaned: 'an agent runs a VM inventory has no record of there',
  missing: 'inventory records a VM its host does not run',
  'split-brain': 'a VM runs on more than one host; the copies that are not inventory’s record were paused',
};

/** Where inventory and the agents disagree, as the last reconciliation pass saw it (docs/reconciliation.md). */
export function ReconciliationPage() {
  const loaded = useLoad(() => report<ReconciliationReport>('/api/v1/reconciliation'));
  const r = loaded.data;
  const columns: Column<ReconciliationFinding>[] = [
    { title: 'Kind', cell: (f) => <Label color={kindColor[f.kind]}>{f.kind}</Label>, text: (f) => f.kind },
    { title: 'VM', cell: (f) => <code>{f.vmId}</code>, text: (f) => f.vmId },
    { title: 'Host', cell: (f) => f.hostId, text: (f) => [f.hostId, ...f.otherHostIds].join(' ') },
    { title: 'Agent', cell: (f) => f.agentState ?? '—', text: (f) => f.agentState ?? '' },
    { title: 'Inventory', cell: (f) => (f.recordedHostId ? `${f.recordedState ?? ''} on ${f.recordedHostId}` : 'no record'), text: (f) => f.recordedHostId ?? '' },
    { title: 'Paused', cell: (f) => f.pausedHostIds.join(', ') || '—', text: (f) => f.pausedHostIds.join(' ') },
    { title: 'Since', cell: (f) => new Date(f.firstSeenAt).toLocaleString(), text: (f) => f.firstSeenAt },
    { title: 'Detail', cell: (f) => f.detail, text: (f) => f.detail },
  ];
  return (
    <PageSection>
      <Title headingLevel="h1">Reconciliation</Title>
      <p>
        Inventory compares what each agent reports it runs with what it records, every pass. A finding is never settled by guessing: {kindText.orphaned}; {kindText.missing};{' '}
        {kindText['split-brain']}.
      </p>
      <div style={{ margin: '0.75rem 0' }}>
        <Button variant="secondary" onClick={loaded.reload} isDisabled={loaded.loading}>
          Reload
        </Button>
      </div>
      <LoadState loaded={loaded} what="the reconciliation report" />
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
          <DataTable label="findings" rows={r.items} columns={columns} rowKey={(f) => `${f.kind}/${f.vmId}/${f.hostId}`} empty="No findings: the agents’ reports match inventory" />
        </>
      )}
    </PageSection>
  );
}
