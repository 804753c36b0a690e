import { useState, type FormEvent } from 'react';
import type { HostListItem, MigrationView, Vm } from '@flexmig/contracts';
import { ActionGroup, Alert, Button, Card, CardBody, CardTitle, Form, FormGroup, FormSelect, FormSelectOption, Modal, ModalBody, ModalFooter, ModalHeader, PageSection, TextInput, Title } from '@patternfly/react-core';
import { list, post } from '../api';
import { describe, formatMiB, LoadState, StateLabel, useLoad } from '../common';
import { DataTable, type Column } from '../data-table';
import { Link, navigate, useLocation } from '../router';

export function VmsPage() {
  const { query } = useLocation();
  const host = query.get('host') ?? undefined;
  const vms = useLoad(() => list<Vm>('/api/v1/vms', { hostId: host }), [host]);
  const hosts = useLoad(() => list<HostListItem>('/api/v1/hosts'));
  const [migrating, setMigrating] = useState<Vm | undefined>();
  const columns: Column<Vm>[] = [
    { title: 'Name', cell: (v) => v.name, text: (v) => `${v.name} ${v.id}` },
    { title: 'Host', cell: (v) => v.hostId, text: (v) => v.hostId },
    { title: 'State', cell: (v) => <StateLabel state={v.state} />, text: (v) => v.state },
    { title: 'Baseline', cell: (v) => v.cpuBaseline, text: (v) => v.cpuBaseline },
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
  return (
    <PageSection>
      <Title headingLevel="h1">VMs{host ? ` on ${host}` : ''}</Title>
      {host && <Link to="/vms">all VMs</Link>}
      <CreateVm hosts={hosts.data ?? []} defaultHost={host} onCreated={vms.reload} />
      <LoadState loaded={vms} what="VMs" />
      {vms.data && <DataTable label="VMs" rows={vms.data} columns={columns} rowKey={(v) => v.id} empty="No VMs" />}
      {migrating && <MigrateModal vm={migrating} hosts={hosts.data ?? []} onClose={() => setMigrating(undefined)} />}
    </PageSection>
  );
}

function CreateVm({ hosts, defaultHost, onCreated }: { hosts: HostListItem[]; defaultHost?: string; onCreated: () => void }) {
  const [name, setName] = useState('');
  const [hostId, setHostId] = useState(defaultHost ?? '');
  const [memoryMiB, setMemory] = useState('1024');
  const [vcpus, setVcpus] = useState('1');
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const target = hostId || hosts.find((h) => h.state === 'up' && !h.maintenance)?.id || '';
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
            <FormSelect id="vm-host" value={target} onChange={(_e, v) => setHostId(v)}>
              {hosts.map((h) => (
                <FormSelectOption key={h.id} value={h.id} label={`${h.id} (${h.maxImcMode ?? 'no mode'}, ${h.state}${h.maintenance ? ', maintenance' : ''})`} />
              ))}
            </FormSelect>
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

function MigrateModal({ vm, hosts, onClose }: { vm: Vm; hosts: HostListItem[]; onClose: () => void }) {
  const [target, setTarget] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const candidates = hosts.filter((h) => h.id !== vm.hostId && h.clusterId === vm.clusterId);
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
          <FormSelect id="migrate-target" value={target} onChange={(_e, v) => setTarget(v)}>
            <FormSelectOption value="" label="let the scheduler choose" />
            {candidates.map((h) => (
              <FormSelectOption key={h.id} value={h.id} label={`${h.id} (${h.maxImcMode ?? 'no mode'}, ${h.state}${h.maintenance ? ', maintenance' : ''})`} isDisabled={h.state !== 'up' || h.maintenance} />
            ))}
          </FormSelect>
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
