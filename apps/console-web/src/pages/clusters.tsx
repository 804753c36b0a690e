import { useState } from 'react';
import type { AutoImcResult, AutoImcTry, Cluster, ClusterImc, ClusterImcPlan, ModeVerification } from '@flexmig/contracts';
import { firstOf } from '@flexmig/contracts/text';
import { Alert, Button, Card, CardBody, CardTitle, DescriptionList, DescriptionListDescription, DescriptionListGroup, DescriptionListTerm, Flex, FlexItem, FormSelect, FormSelectOption, Label, List, ListItem, PageSection, TextInput, Title } from '@patternfly/react-core';
import { Table, Tbody, Td, Th, Thead, Tr } from '@patternfly/react-table';
import { ApiError, get, list, post } from '../api';
import { CPU_HEADERS, cpuRows, failingLines, PLAN_HEADERS, planRows, VERIFICATION_HEADERS, verificationRows, type GroupRow } from '@flexmig/contracts/host-groups';
import { Link } from '../router';
import { describe, LoadState, useLoad } from '../common';

export function ClustersPage() {
  const clusters = useLoad(() => list<Cluster>('/api/v1/clusters'));
  const [selected, setSelected] = useState<string | undefined>();
  const id = selected ?? clusters.data?.[0]?.id;
  return (
    <PageSection>
      <Title headingLevel="h1">Clusters</Title>
      <LoadState loaded={clusters} what="clusters" />
      {clusters.data && !clusters.data.length && <Alert variant="info" isInline title="No clusters yet: start an agent (it registers its host and its cluster)" />}
      {clusters.data && clusters.data.length > 1 && (
        <FormSelect value={id} onChange={(_e, v) => setSelected(v)} aria-label="cluster" style={{ maxWidth: 400, marginTop: 16 }}>
          {clusters.data.map((c) => (
            <FormSelectOption key={c.id} value={c.id} label={`${c.name} (${c.imcMode ?? 'mode unset'})`} />
          ))}
        </FormSelect>
      )}
      {id && <ClusterDetail key={id} cluster={clusters.data!.find((c) => c.id === id)!} />}
    </PageSection>
  );
}

function ClusterDetail({ cluster }: { cluster: Cluster }) {
  const imc = useLoad(() => get<ClusterImc>(`/api/v1/clusters/${cluster.id}/imc`), [cluster.id]);
  return (
    <Flex direction={{ default: 'column' }} style={{ marginTop: 16 }}>
      <Card>
        <CardTitle>
          {cluster.name} <Label>{cluster.id}</Label>
        </CardTitle>
        <CardBody>
          <LoadState loaded={imc} what="the cluster's CPU mode" />
          {imc.data && <ImcSummary imc={imc.data} cluster={cluster} />}
        </CardBody>
      </Card>
      {imc.data && <Verify cluster={cluster} imc={imc.data} />}
      <Auto cluster={cluster} onChanged={imc.reload} />
      <Plan cluster={cluster} hosts={imc.data?.hosts} />
    </Flex>
  );
}

function ImcSummary({ imc, cluster }: { imc: ClusterImc; cluster: Cluster }) {
  return (
    <>
      <DescriptionList isHorizontal isCompact columnModifier={{ default: '2Col' }}>
        <Field term="IMC mode (as set)" value={imc.mode ?? '(unset)'} />
        <Field term="Effective (new VMs get)" value={imc.effectiveMode ?? '(none)'} />
        <Field term="Common to all hosts" value={imc.commonMode ?? '(none)'} />
        <Field term="Holding it down" value={firstOf(imc.holdingDown) || '-'} />
        <Field term="Allocation ratios" value={`vCPU ${cluster.cpuAllocationRatio}, memory ${cluster.memoryAllocationRatio}`} />
      </DescriptionList>
      <SmallTable label="CPUs of the cluster" headers={CPU_HEADERS} rows={cpuRows(imc.hosts)} />
      <p style={{ marginTop: 8 }}>
        Each host of the cluster, its capacity and its VMs, a page at a time: <Link to={`/hosts?cluster=${encodeURIComponent(cluster.id)}`}>its hosts</Link>.
      </p>
    </>
  );
}

/** A cluster's tables: a row per group of hosts that read alike (@flexmig/contracts/host-groups), so no paging. */
const SmallTable = ({ label, headers, rows }: { label: string; headers: string[]; rows: GroupRow[] }) => (
  <Table aria-label={label} variant="compact">
    <Thead>
      <Tr>
        {headers.map((h) => (
          <Th key={h}>{h}</Th>
        ))}
      </Tr>
    </Thead>
    <Tbody>
      {rows.map((r) => (
        <Tr key={r.key}>
          {r.cells.map((c, i) => (
            <Td key={headers[i]} dataLabel={headers[i]}>
              {c}
            </Td>
          ))}
        </Tr>
      ))}
    </Tbody>
  </Table>
);

const Field = ({ term, value }: { term: string; value: string }) => (
  <DescriptionListGroup>
    <DescriptionListTerm>{term}</DescriptionListTerm>
    <DescriptionListDescription>{value}</DescriptionListDescription>
  </DescriptionListGroup>
);

function Verify({ cluster, imc }: { cluster: Cluster; imc: ClusterImc }) {
  const [mode, setMode] = useState(imc.commonMode ?? '');
  const [result, setResult] = useState<ModeVerification | undefined>();
  const [error, setError] = useState<string | undefined>();
  const run = async () => {
    setError(undefined);
    try {
      setResult(await post<ModeVerification>(`/api/v1/clusters/${cluster.id}/imc/verify`, { mode }));
    } catch (e) {
      setResult(undefined);
      setError(describe(e));
    }
  };
  const modes = [...new Set(imc.hosts.map((h) => h.maxImcMode).filter((m): m is string => !!m))];
  return (
    <Card>
      <CardTitle>Verify a mode (changes nothing)</CardTitle>
      <CardBody>
        <Flex>
          <FlexItem>
            <TextInput aria-label="mode to verify" value={mode} onChange={(_e, v) => setMode(v)} list="imc-modes" placeholder="a mode name, e.g. Westmere" />
            <datalist id="imc-modes">
              {modes.map((m) => (
                <option key={m} value={m} />
              ))}
            </datalist>
          </FlexItem>
          <FlexItem>
            <Button variant="secondary" onClick={run} isDisabled={!mode.trim()}>
              Verify
            </Button>
          </FlexItem>
        </Flex>
        {error && <Alert variant="danger" isInline title="Verify failed">{error}</Alert>}
        {result && (
          <>
            <Alert variant={result.pass ? 'success' : 'warning'} isInline title={`mode ${result.mode}: ${result.pass ? 'every host passes' : 'not every host passes'}`} />
            <SmallTable label="verification" headers={VERIFICATION_HEADERS} rows={verificationRows(result)} />
          </>
        )}
      </CardBody>
    </Card>
  );
}

function Auto({ cluster, onChanged }: { cluster: Cluster; onChanged: () => void }) {
  const [tries, setTries] = useState<AutoImcTry[] | undefined>();
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>();
  const run = async () => {
    try {
      const r = await post<AutoImcResult>(`/api/v1/clusters/${cluster.id}/imc/auto`, {});
      setTries(r.tries);
      setOutcome({ ok: true, text: r.change.changed ? `mode set to ${r.mode} (was ${r.change.previousMode ?? 'unset'})` : `mode stays ${r.mode}` });
      onChanged();
    } catch (e) {
      // refused: when the probe ran (no mode fits), its tries are in the details
      setTries(e instanceof ApiError ? (e.details as { tries?: AutoImcTry[] } | undefined)?.tries : undefined);
      setOutcome({ ok: false, text: describe(e) });
    }
  };
  return (
    <Card>
      <CardTitle>Auto: the highest mode every host passes (admin)</CardTitle>
      <CardBody>
        <Button variant="primary" onClick={run}>
          Run auto (sets the mode)
        </Button>
        {tries && (
          <List isPlain aria-label="modes tried">
            {tries.map((t) => (
              <ListItem key={t.mode}>
                <strong>{t.mode}</strong>: {t.pass ? 'every host passes' : `${t.failing.length} host(s) fail`}
                {failingLines(t).map(({ key, line }) => (
                  <div key={key} style={{ marginLeft: 24 }}>
                    {line}
                  </div>
                ))}
              </ListItem>
            ))}
          </List>
        )}
        {outcome && <Alert variant={outcome.ok ? 'success' : 'danger'} isInline title={outcome.ok ? 'Auto' : 'Auto was refused'}>{outcome.text}</Alert>}
      </CardBody>
    </Card>
  );
}

function Plan({ cluster, hosts }: { cluster: Cluster; hosts: ClusterImc['hosts'] | undefined }) {
  const plan = useLoad(() => get<ClusterImcPlan>(`/api/v1/clusters/${cluster.id}/imc/plan`), [cluster.id]);
  return (
    <Card>
      <CardTitle>Plan</CardTitle>
      <CardBody>
        {plan.notFound ? (
          <Alert variant="info" isInline title="This inventory has no plan API yet">
            GET /api/v1/clusters/:id/imc/plan answered 404; the mode above and Verify still work.
          </Alert>
        ) : (
          <LoadState loaded={plan} what="the plan" />
        )}
        {plan.data && (
          <>
            <DescriptionList isHorizontal isCompact>
              <Field term="Mode all hosts pass" value={plan.data.mode ?? '(none)'} />
              <Field term="Why" value={plan.data.reason} />
              <Field term="Holding it down" value={firstOf(plan.data.holdingDown) || '-'} />
            </DescriptionList>
            <SmallTable label="plan of the hosts" headers={PLAN_HEADERS} rows={planRows(plan.data, hosts)} />
          </>
        )}
      </CardBody>
    </Card>
  );
}
