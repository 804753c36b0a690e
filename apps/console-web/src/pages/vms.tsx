import { useState, type FormEvent } from 'react';
import type { MigrationView, Vm } from '@flexmig/contracts';
import { ActionGroup, Alert, Button, Card, CardBody, CardTitle, Form, FormGroup, Modal, ModalBody, ModalFooter, ModalHeader, PageSection, SearchInput, TextInput, Title, Toolbar, ToolbarContent, ToolbarItem } from '@patternfly/react-core';
import { onePage, post } from '../api';
import { describe, formatMiB, StateLabel } from '../common';
import type { Column } from '../data-table';
import { HostPicker } from '../host-picker';
import { PagedTable } from '../paged-table';
import { Link, navigate, useLocation } from '../router';

/**
 * The VMs a page at a time, as the server pages them (oldest first), filtered on the server: by host
 * (`?host=`, the hosts page's links) and by exact name. 10,000 VMs are never read whole.
 */
export function VmsPage() {
  const { query } = useLocation();
  const host = query.get('host') ?? undefined;
  const [typed, setTyped] = useState('');
  const [name, setName] = useState('');
  const [refresh, setRefresh] = useState(0);
  const [migrating, setMigrating] = useState<Vm | undefined>();
  const columns: Column<Vm>[] = [
    { title: 'Name', cell: (v) => v.name },
    { title: 'Host', cell: (v) => v.hostId },
    { title: 'State', cell: (v) => <StateLabel state={v.state} /> },
    { title: 'Baseline', cell: (v) => v.cpuBaseline },
    { title: 'vCPUs', cell: (v) => v.vcpus },
    { title: 'Memory', cell: (v) => formatMiB(v.memoryMiB) },
    {
      title: '',
      cell: (v) => (
        <Button variant="secondary" size="sm" onClick={() => setMigrating(v)} aria-label={`migrate ${v.name}`}>
          Migrate
        </Button>
      ),
    },
  ];
  const empty = name ? `No VM named ${name}${host ? ` on ${host}` : ''}` : host ? `No VMs on ${host}` : 'No VMs: create one above';
  return (
    <PageSection>
      <Title headingLevel="h1">VMs{host ? ` on ${host}` : ''}</Title>
      {host && <Link to="/vms">all VMs</Link>}
      <CreateVm defaultHost={host} onCreated={() => setRefresh((n) => n + 1)} />
      <Toolbar>
        <ToolbarContent>
          <ToolbarItem>
            <SearchInput aria-label="find a VM by name" placeholder="Find a VM by its name (Enter)" value={typed} onChange={(_e, v) => setTyped(v)} onSearch={(_e, v) => setName(v.trim())} onClear={() => (setTyped(''), setName(''))} />
          </ToolbarItem>
        </ToolbarContent>
      </Toolbar>
      <PagedTable key={`${host ?? ''}/${name}`} label="VMs" load={(page) => onePage<Vm>('/api/v1/vms', { hostId: host, name: name || undefined }, page)} refresh={refresh} columns={columns} rowKey={(v) => v.id} empty={empty} />
      {migrating && <MigrateModal vm={migrating} onClose={() => setMigrating(undefined)} />}
    </PageSection>
  );
}

function CreateVm({ defaultHost, onCreated }: { defaultHost?: string; onCreated: () => void }) {
  const [name, setName] = useState('');
  // the host typed; until something is typed (undefined), the first suggested host that is up and not in maintenance
  const [hostId, setHostId] = useState<string | undefined>(defaultHost);
  const [firstUp, setFirstUp] = useState('');
  const [memoryMiB, setMemory] = useState('1024');
  const [vcpus, setVcpus] = useState('1');
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const target = hostId ?? firstUp;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      const vm = await post<Vm>('/api/v1/vms', { name: name.trim(), hostId: target, memoryMiB: Number(memoryMiB), vcpus: Number(vcpus) });
      setMessage({ ok: true, text: `VM ${vm.name} started on ${vm.hostId} with baseline ${vm.cpuBaseline}` });
      setName('');
      onCreated();
    } catch (err) {
      setMessage({ ok: false, text: describe(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card isCompact style={{ margin: '16px 0' }}>
      <CardTitle>Create a VM</CardTitle>
      <CardBody>
        <Form isHorizontal onSubmit={submit} aria-label="create a VM">
          <FormGroup label="Name" isRequired fieldId="vm-name">
            <TextInput id="vm-name" value={name} onChange={(_e, v) => setName(v)} isRequired />
          </FormGroup>
          <FormGroup label="Host" fieldId="vm-host">
            <HostPicker id="vm-host" value={target} onChange={setHostId} suggest={(h) => h.state === 'up' && !h.maintenance} placeholder="a host's id" onSuggested={(hosts) => setFirstUp(hosts[0]?.id ?? '')} />
          </FormGroup>
          <FormGroup label="Memory (MiB)" fieldId="vm-memory">
            <TextInput id="vm-memory" type="number" value={memoryMiB} onChange={(_e, v) => setMemory(v)} />
          </FormGroup>
          <FormGroup label="vCPUs" fieldId="vm-vcpus">
            <TextInput id="vm-vcpus" type="number" value={vcpus} onChange={(_e, v) => setVcpus(v)} />
          </FormGroup>
          <ActionGroup>
            <Button type="submit" variant="primary" isLoading={busy} isDisabled={busy || !name.trim() || !target}>
              Create
            </Button>
          </ActionGroup>
        </Form>
        {message && <Alert variant={message.ok ? 'success' : 'danger'} isInline title={message.ok ? 'Created' : 'Not created'}>{message.text}</Alert>}
      </CardBody>
    </Card>
  );
}

function MigrateModal({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [target, setTarget] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const start = async () => {
    setBusy(true);
    try {
      const m = await post<MigrationView & { prediction?: unknown }>('/api/v1/migrations', { vmId: vm.id, ...(target ? { targetHostId: target } : {}) });
      // the prediction, when the scheduler gives one, travels with the migration to its page
      if (m.prediction) sessionStorage.setItem(`flexmig.prediction.${m.id}`, JSON.stringify(m.prediction));
      navigate(`/migrations/${m.id}`);
    } catch (e) {
      setError(describe(e));
      setBusy(false);
    }
  };
  return (
    <Modal isOpen onClose={onClose} variant="small" aria-labelledby="migrate-title">
      <ModalHeader title={`Migrate ${vm.name}`} labelId="migrate-title" description={`now on ${vm.hostId}, baseline ${vm.cpuBaseline}`} />
      <ModalBody>
        <FormGroup label="Target host" fieldId="migrate-target">
          <HostPicker id="migrate-target" value={target} onChange={setTarget} clusterId={vm.clusterId} suggest={(h) => h.id !== vm.hostId && h.state === 'up' && !h.maintenance} placeholder="empty: the scheduler chooses" />
        </FormGroup>
        {error && <Alert variant="danger" isInline title="Refused">{error}</Alert>}
      </ModalBody>
      <ModalFooter>
        <Button variant="primary" onClick={start} isLoading={busy} isDisabled={busy}>
          Start migration
        </Button>
        <Button variant="link" onClick={onClose}>
          Cancel
        </Button>
      </ModalFooter>
    </Modal>
  );
}
