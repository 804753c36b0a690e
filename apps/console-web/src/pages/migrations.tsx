import { useEffect, useState } from 'react';
import type { MigrationProgress, MigrationView } from '@flexmig/contracts';
import { Alert, Button, Card, CardBody, CardTitle, DescriptionList, DescriptionListDescription, DescriptionListGroup, DescriptionListTerm, Flex, Label, PageSection, ProgressStep, ProgressStepper, Title } from '@patternfly/react-core';
import { get, onePage, openStream, post } from '../api';
import { Bar, describe, formatBytes, formatDuration, LoadState, StateLabel, useLoad } from '../common';
import type { Column } from '../data-table';
import { FilterSelect, PagedTable } from '../paged-table';
import { Link } from '../router';

const TERMINAL = ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'];
const STATES = ['queued', 'running', ...TERMINAL];

export function MigrationsPage() {
  const [state, setState] = useState('');
  const [refresh, setRefresh] = useState(0);
  // the page shown is read again when a migration starts or ends (the live events stream), at most every 2 s
  // however many there are (an evacuation of a large host starts dozens at once); one page, newest first, not
  // every migration ever run
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const soon = () => (timer ??= setTimeout(() => ((timer = undefined), setRefresh((n) => n + 1)), 2000));
    const s = openStream('/api/v1/events?types=migration.requested,migration.completed,migration.rolled-back,migration.cancelled,migration.failed,migration.resolved', soon);
    return () => {
      s.close();
      clearTimeout(timer);
    };
  }, []);
  const columns: Column<MigrationView>[] = [
    { title: 'Migration', cell: (m) => <Link to={`/migrations/${m.id}`}>{m.id.slice(0, 8)}</Link> },
    { title: 'VM', cell: (m) => m.vmId.slice(0, 8) },
    { title: 'From', cell: (m) => m.sourceHostId },
    { title: 'To', cell: (m) => m.targetHostId },
    { title: 'State', cell: (m) => <StateLabel state={m.state} /> },
    { title: 'Step', cell: (m) => (m.currentStep ? `${m.currentStep.number} ${m.currentStep.name}` : '') },
    { title: 'Downtime', cell: (m) => formatDuration(m.result?.downtimeMs) },
    { title: 'Created', cell: (m) => new Date(m.createdAt).toLocaleString() },
  ];
  return (
    <PageSection>
      <Title headingLevel="h1">Migrations</Title>
      <FilterSelect label="state" value={state} values={STATES} all="every state" onChange={setState} />
      <PagedTable
        key={state}
        label="migrations"
        load={(page) => onePage<MigrationView>('/api/v1/migrations', { state: state || undefined }, page)}
        refresh={refresh}
        columns={columns}
        rowKey={(m) => m.id}
        empty={state ? `No ${state} migrations` : 'No migrations yet: migrate a VM from the VMs page'}
      />
    </PageSection>
  );
}

/** One migration, live: its stream's events refresh the view, its progress samples move the bar. */
export function MigrationPage({ id }: { id: string }) {
  const view = useLoad(() => get<MigrationView>(`/api/v1/migrations/${id}`), [id]);
  const [progress, setProgress] = useState<MigrationProgress | undefined>();
  const [stream, setStream] = useState<string>('connecting');
  useEffect(() => {
    const s = openStream(
      `/api/v1/migrations/${encodeURIComponent(id)}/events`,
      (m) => {
        if (m.event === 'migration.progress') setProgress(m.data as MigrationProgress);
        else view.reload();
      },
      (state, why) => setStream(why ? `${state}: ${why}` : state),
    );
    return () => s.close();
  }, [id, view.reload]);
  const m = view.data;
  const prediction = sessionStorage.getItem(`flexmig.prediction.${id}`);
  return (
    <PageSection>
      <Title headingLevel="h1">Migration {id}</Title>
      <LoadState loaded={view} what="the migration" />
      {m && (
        <Flex direction={{ default: 'column' }}>
          {prediction && <Alert variant="info" isInline title="Prediction">{prediction}</Alert>}
          <Card>
            <CardTitle>
              VM {m.vmId} from {m.sourceHostId} to {m.targetHostId} <StateLabel state={m.state} /> <Label variant="outline">live: {stream}</Label>
            </CardTitle>
            <CardBody>
              <Live m={m} progress={progress} />
              {m.placement && <p>Target chosen: {m.placement.reason}</p>}
              {m.failure && (
                <Alert variant="danger" isInline title={`Failed at step ${m.failure.step} ${m.failure.stepName}: ${m.failure.code}`}>
                  {m.failure.message}
                </Alert>
              )}
              {m.attention && (
                <Alert variant="danger" isInline title={`Needs attention (${m.attention.kind}) at step ${m.attention.step} ${m.attention.stepName}`}>
                  {m.attention.message}: see POST /api/v1/migrations/{m.id}/resolve
                </Alert>
              )}
              {m.cancellable && <Cancel id={m.id} onDone={view.reload} />}
            </CardBody>
          </Card>
          {m.result && <Result m={m} />}
          <Card>
            <CardTitle>Steps</CardTitle>
            <CardBody>
              <Timeline m={m} />
            </CardBody>
          </Card>
        </Flex>
      )}
    </PageSection>
  );
}

function Live({ m, progress }: { m: MigrationView; progress?: MigrationProgress }) {
  if (TERMINAL.includes(m.state)) return <Bar value={m.state === 'completed' ? 100 : (progress?.percent ?? 0)} title={m.state} state={m.state} />;
  const step = m.currentStep ? `step ${m.currentStep.number} ${m.currentStep.name}` : m.state;
  if (!progress) return <Bar value={0} title={m.state === 'queued' ? `queued${m.queuePosition ? `, position ${m.queuePosition}` : ''}` : step} />;
  return (
    <>
      <Bar value={progress.percent} title={`${step}, pass ${progress.pass}`} />
      <p aria-label="live figures">
        {formatBytes(progress.transferredBytes)} of {formatBytes(progress.totalBytes)} sent, {formatBytes(progress.bandwidthBytesPerSec)}/s, {formatBytes(progress.remainingBytes)} left, dirty {formatBytes(progress.dirtyRateBytesPerSec)}/s, expected downtime {formatDuration(progress.expectedDowntimeMs)}
        {progress.throttlePct > 0 ? `, CPU throttled ${progress.throttlePct}%` : ''}
      </p>
    </>
  );
}

function Result({ m }: { m: MigrationView }) {
  const r = m.result!;
  const items: [string, string][] = [
    ['Downtime', formatDuration(r.downtimeMs)],
    ['Total time', formatDuration(r.totalTimeMs)],
    ['Transferred', formatBytes(r.bytesTransferred)],
    ['Passes', String(r.passes)],
  ];
  return (
    <Card>
      <CardTitle>Result</CardTitle>
      <CardBody>
        <DescriptionList isHorizontal isCompact columnModifier={{ default: '2Col' }} aria-label="result">
          {items.map(([t, v]) => (
            <DescriptionListGroup key={t}>
              <DescriptionListTerm>{t}</DescriptionListTerm>
              <DescriptionListDescription>{v}</DescriptionListDescription>
            </DescriptionListGroup>
          ))}
        </DescriptionList>
      </CardBody>
    </Card>
  );
}

const stepVariant = (status: string) =>
  status === 'completed' ? 'success' : status === 'running' ? 'info' : status === 'failed' ? 'danger' : status === 'compensated' ? 'warning' : 'pending';

function Timeline({ m }: { m: MigrationView }) {
  return (
    <ProgressStepper isVertical aria-label="step timeline">
      {m.steps.map((s) => (
        <ProgressStep
          key={s.number}
          id={`step-${s.number}`}
          titleId={`step-${s.number}-title`}
          variant={stepVariant(s.status)}
          isCurrent={m.currentStep?.number === s.number && !TERMINAL.includes(m.state)}
          description={[s.status, s.durationMs !== null ? formatDuration(s.durationMs) : '', s.attempt > 1 ? `attempt ${s.attempt}` : '', s.error ? `${s.error.code}: ${s.error.message}` : ''].filter(Boolean).join(' · ')}
          aria-label={`step ${s.number} ${s.name}: ${s.status}`}
        >
          {s.number}. {s.name} <small>({s.actor})</small>
        </ProgressStep>
      ))}
    </ProgressStepper>
  );
}

function Cancel({ id, onDone }: { id: string; onDone: () => void }) {
  const [error, setError] = useState<string | undefined>();
  const cancel = async () => {
    try {
      await post(`/api/v1/migrations/${id}/cancel`, { reason: 'cancelled from the web console' });
      onDone();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <>
      <Button variant="danger" size="sm" onClick={cancel} style={{ marginTop: 8 }}>
        Cancel migration
      </Button>
      {error && <Alert variant="danger" isInline title="Not cancelled">{error}</Alert>}
    </>
  );
}
