import { countBy, cpuName, CPU_HEADERS, cpuRows, firstOf, type GroupRow, groupsOf, lacksText, PLAN_HEADERS, planRows, VERIFICATION_HEADERS, verificationRows } from '@flexmig/contracts';
import type { Cluster, ClusterImc, ClusterImcPlan, EvacuationView, HostListItem, MigrationPrediction, MigrationProgress, MigrationView, ModeVerification, PredictedFigures, PredictionInput, ReconciliationReport, Vm } from '@flexmig/contracts';
import { fields, formatBytes, formatDuration, formatRate, progressBar, table } from './output';

// Pure: the API's objects as text for people. JSON and YAML print the objects themselves.

/** A host as the table shows it: listed (its features by digest) or with its features (`ApiClient.hosts`). */
type TableHost = Omit<HostListItem, 'cpu'> & { cpu: Pick<HostListItem['cpu'], 'modelName'> };

/** Whether the hosts' VMs must be read to count them: a server before `vmCount` does not send it. */
export const hostsNeedVms = (hosts: Pick<HostListItem, 'vmCount'>[]): boolean => hosts.some((h) => h.vmCount === undefined);

/** Hosts as a table. Each host's VMs are its `vmCount`; without it, those of `vms` (every VM of the hosts listed) on it. */
export function hostsTable(hosts: TableHost[], vms: Vm[] = []): string {
  const counted = countBy(vms, (v) => v.hostId);
  return table(hosts, [
    { header: 'HOST', value: (h) => h.id },
    { header: 'HIGHEST MODE', value: (h) => h.maxImcMode ?? '(none)' },
    { header: 'CPU', value: (h) => h.cpu.modelName },
    { header: 'STATE', value: (h) => h.state },
    { header: 'MAINTENANCE', value: (h) => h.maintenance },
    { header: 'VMS', value: (h) => h.vmCount ?? counted.get(h.id) ?? 0, right: true },
    // used of what the host may hold: its size times its cluster's allocation ratios (a server before them: its size)
    { header: 'VCPUS USED', value: (h) => `${h.allocatedVcpus}/${h.capacityVcpus ?? h.vcpus}`, right: true },
    { header: 'MEMORY USED', value: (h) => `${formatBytes(h.allocatedMemoryMiB * 2 ** 20)}/${formatBytes((h.capacityMemoryMiB ?? h.memoryMiB) * 2 ** 20)}`, right: true },
  ], 'no hosts: start an agent (it registers its host)');
}

/** Whether the clusters' hosts must be read to count them: a server before `hostCount` does not send it. */
export const clustersNeedHosts = (clusters: Pick<Cluster, 'hostCount'>[]): boolean => clusters.some((c) => c.hostCount === undefined);

/** Clusters as a table. Each cluster's hosts are its `hostCount`; without it, those of `hosts` (every host) in it. */
export function clustersTable(clusters: Cluster[], hosts: Pick<HostListItem, 'clusterId'>[] = []): string {
  const counted = countBy(hosts, (h) => h.clusterId);
  return table(clusters, [
    { header: 'ID', value: (c) => c.id },
    { header: 'NAME', value: (c) => c.name },
    { header: 'IMC MODE', value: (c) => c.imcMode ?? '(unset)' },
    { header: 'HOSTS', value: (c) => c.hostCount ?? counted.get(c.id) ?? 0, right: true },
  ], 'no clusters');
}

export function vmsTable(vms: Vm[]): string {
  return table(vms, [
    { header: 'ID', value: (v) => v.id },
    { header: 'NAME', value: (v) => v.name },
    { header: 'HOST', value: (v) => v.hostId },
    { header: 'STATE', value: (v) => v.state },
    { header: 'BASELINE', value: (v) => v.cpuBaseline },
    { header: 'VCPUS', value: (v) => v.vcpus, right: true },
    { header: 'MEMORY', value: (v) => formatBytes(v.memoryMiB * 2 ** 20), right: true },
  ], 'no VMs');
}

export function migrationsTable(ms: MigrationView[]): string {
  return table(ms, [
    { header: 'ID', value: (m) => m.id },
    { header: 'VM', value: (m) => m.vmId },
    { header: 'FROM', value: (m) => m.sourceHostId },
    { header: 'TO', value: (m) => m.targetHostId },
    { header: 'STATE', value: (m) => m.state },
    { header: 'STEP', value: (m) => (m.currentStep ? `${m.currentStep.number} ${m.currentStep.name}` : '') },
    { header: 'PROGRESS', value: (m) => (typeof m.progress?.percent === 'number' && !isTerminal(m.state) ? `${m.progress.percent.toFixed(0)}%` : ''), right: true },
    { header: 'DOWNTIME', value: (m) => (m.result ? formatDuration(m.result.downtimeMs) : ''), right: true },
    { header: 'CREATED', value: (m) => m.createdAt },
  ], 'no migrations');
}

/**
 * Hosts in groups that read alike (libs/contracts, host-groups: the console's clusters page shows the same
 * rows), as a table: a cluster of 1,000 hosts of three CPUs is three rows, each counting its hosts and
 * naming the first five. `--hosts` gives a row per host instead, `-o json` the answer itself.
 */
function groupsTable(headers: readonly string[], rows: readonly GroupRow[]): string {
  return table(rows, headers.map((header, i) => ({ header: header.toUpperCase(), value: (r: GroupRow) => r.cells[i] })), 'no hosts');
}

/** How a cluster's CPU views list its hosts: in groups (the default), or a row per host (`--hosts`). */
export interface HostRowsOption {
  perHost?: boolean;
}

export function imcView(imc: ClusterImc, { perHost = false }: HostRowsOption = {}): string {
  const head = fields([
    ['mode (as set)', imc.mode ?? '(unset)'],
    ['effective', imc.effectiveMode],
    ['common to all hosts', imc.commonMode],
    // the first ten and how many more: a third of 1,000 hosts may hold it down; --hosts and -o json name each
    ['holding it down', firstOf(imc.holdingDown) || '-'],
  ]);
  const hosts = perHost
    ? table(imc.hosts, [
        { header: 'HOST', value: (h) => h.hostId },
        { header: 'HIGHEST MODE', value: (h) => h.maxImcMode ?? '(none)' },
        { header: 'CPU', value: (h) => cpuName(h) },
        { header: 'STATE', value: (h) => h.state },
      ], 'no hosts')
    : groupsTable(CPU_HEADERS, cpuRows(imc.hosts));
  return `${head}\n\n${hosts}`;
}

export function verificationView(v: ModeVerification, { perHost = false }: HostRowsOption = {}): string {
  const rows = perHost
    ? table(v.hosts, [
        { header: 'HOST', value: (h) => h.hostId },
        { header: 'PASS', value: (h) => h.pass },
        { header: 'WHY', value: (h) => (h.pass ? '' : lacksText(h) || h.reason) },
      ], 'no hosts')
    : groupsTable(VERIFICATION_HEADERS, verificationRows(v));
  return `mode ${v.mode}: ${v.pass ? 'every host passes' : 'not every host passes'}\n\n${rows}`;
}

export interface AutoTry {
  mode: string;
  pass: boolean;
  failing: { hostId: string; missing: string[]; vendorMismatch: boolean }[];
}

/**
 * The probe of `imc auto`, from the highest mode down: each mode tried and, a line per what they lacked,
 * the hosts that failed it (the first ten named: 1,000 hosts of a few CPUs are a few lines, not 1,000 per
 * mode; `-o json` names every host).
 */
export function autoView(tries: AutoTry[], chosen: string | undefined): string {
  const lines = tries.map((t, i) => {
    const head = `${String(i + 1).padStart(2)}. ${t.mode}: ${t.pass ? 'every host passes' : `${t.failing.length} host(s) fail`}`;
    return [head, ...groupsOf(t.failing, (h) => lacksText(h)).map((g) => `      ${firstOf(g.items.map((h) => h.hostId))}: ${g.key}`)].join('\n');
  });
  const end = chosen ? `mode set to ${chosen}` : 'no mode fits every host: nothing changed';
  return [...lines, '', end].join('\n');
}

export function evacuationView(e: EvacuationView, percentOf: (migrationId: string) => number | undefined = () => undefined): string {
  const c = e.counts;
  const head = `evacuation ${e.id} of ${e.hostId}: ${e.state} (${c.moved} moved, ${c.moving} moving, ${c.failed} failed, ${c.notMoved} not moved, of ${c.total})`;
  const rows = table(e.vms, [
    { header: 'VM', value: (v) => v.name },
    { header: 'OUTCOME', value: (v) => v.outcome },
    { header: 'MIGRATION', value: (v) => v.migrationState },
    { header: 'TO', value: (v) => v.targetHostId },
    { header: 'PROGRESS', value: (v) => (v.outcome === 'moving' && v.migrationId ? progressOrBlank(percentOf(v.migrationId)) : '') },
    { header: 'REASON', value: (v) => v.reason },
  ], 'no VMs on the host');
  return `${head}\n${rows}`;
}

const progressOrBlank = (p: number | undefined) => (p === undefined ? '' : progressBar(p, 20));

const isTerminal = (state: string) => ['completed', 'rolled-back', 'cancelled', 'failed-needs-attention'].includes(state);

/** One line of live progress: step, pass, bar, rate, remaining, expected downtime. */
export function progressLine(p: MigrationProgress, stepName?: string): string {
  return [
    `step ${p.step}${stepName ? ` ${stepName}` : ''}`,
    `pass ${p.pass}`,
    progressBar(p.percent),
    formatRate(p.bandwidthBytesPerSec),
    `${formatBytes(p.remainingBytes)} left`,
    `dirty ${formatRate(p.dirtyRateBytesPerSec)}`,
    `expected downtime ${formatDuration(p.expectedDowntimeMs)}`,
    ...(p.throttlePct > 0 ? [`cpu throttled ${p.throttlePct}%`] : []),
  ].join('  ');
}

/** The migration as it started: where to, why there, and the scheduler's prediction (or why it has none). */
export function migrationStartView(m: MigrationView): string {
  const lines = [`migration ${m.id}: VM ${m.vmId} from ${m.sourceHostId} to ${m.targetHostId} (${m.state}${m.queuePosition ? `, queue position ${m.queuePosition}` : ''})`];
  if (m.placement) lines.push(`  target chosen: ${m.placement.reason}`);
  if (m.prediction) lines.push(...predictionLines(m.prediction).map((l) => `  ${l}`));
  else if (m.predictionError) lines.push(`  prediction: none (${m.predictionError})`);
  return lines.join('\n');
}

/** A prediction's figures in one phrase. */
export function predictionText(p: PredictedFigures): string {
  return [
    p.converges ? (p.switchover === 'postcopy' ? 'converges by post-copy' : 'converges') : 'does not converge',
    `total ${formatDuration(p.totalTimeMs)}`,
    `downtime ${formatDuration(p.downtimeMs)}`,
    `${p.passes} passes`,
    `${formatBytes(p.bytesTransferred)} to send`,
    ...(p.throttlePct > 0 ? [`cpu throttled up to ${p.throttlePct}%`] : []),
  ].join(', ');
}

/** The prediction, the levers that would make it converge, and where each input came from (with its age). */
export function predictionLines(p: MigrationPrediction): string[] {
  const lines = [`prediction: ${predictionText(p.predicted)}${p.predicted.reason ? ` (${p.predicted.reason})` : ''}`];
  for (const l of p.levers) lines.push(`  lever ${l.lever} ${JSON.stringify(l.policy)}: ${predictionText(l.predicted)}; cost: ${l.cost}`);
  const i = p.inputs;
  const age = (x: PredictionInput) => (x.ageMs === null ? x.origin : `${x.origin}, ${formatDuration(x.ageMs)} old`);
  lines.push(
    `  inputs: dirty ${formatRate(i.dirtyRateBytesPerSec.value)} (${age(i.dirtyRateBytesPerSec)}), working set ${formatBytes(i.workingSetBytes.value)}, ` +
      `link ${formatRate(i.bandwidthBytesPerSec.value)} (${age(i.bandwidthBytesPerSec)})`,
  );
  return lines;
}

/** How the migration ended: the figures, or where and why it failed. */
export function migrationEndView(m: MigrationView): string {
  const lines = [`migration ${m.id}: ${m.state}`];
  if (m.result) {
    lines.push(
      fields([
        ['  total time', formatDuration(m.result.totalTimeMs)],
        ['  downtime', formatDuration(m.result.downtimeMs)],
        ['  transferred', formatBytes(m.result.bytesTransferred)],
        ['  passes', m.result.passes],
      ]),
    );
    if (m.result.predicted) lines.push(`  predicted: ${predictionText(m.result.predicted)}`);
  }
  if (m.failure) lines.push(`  failed at step ${m.failure.step} ${m.failure.stepName}: ${m.failure.code}: ${m.failure.message}`);
  if (m.attention) lines.push(`  needs attention (${m.attention.kind}): ${m.attention.message}; see docs on POST /api/v1/migrations/${m.id}/resolve`);
  const done = m.steps.filter((s) => s.durationMs !== null);
  if (done.length) lines.push(`  steps: ${done.map((s) => `${s.number} ${s.name} ${formatDuration(s.durationMs)}${s.status === 'completed' ? '' : ` (${s.status})`}`).join(', ')}`);
  return lines.join('\n');
}

/** One live event (`flexmig events`) as a line: time, type, subject, the data's gist. */
export function eventLine(e: { id?: string; event: string; data: unknown }): string {
  const d = (e.data ?? {}) as Record<string, unknown>;
  if (e.event === 'migration.progress') {
    return `${String(d.at ?? '')}  migration.progress  ${String(d.migrationId ?? '')}  ${typeof d.percent === 'number' ? `${d.percent.toFixed(1)}%` : ''}`.trimEnd();
  }
  const inner = (d.data ?? {}) as Record<string, unknown>;
  // the scalars of the data, but not the one the subject already says
  const gist = Object.entries(inner)
    .filter(([, v]) => v !== d.subject && (v === null || ['string', 'number', 'boolean'].includes(typeof v)))
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return `${String(d.time ?? '')}  ${e.event}  ${String(d.subject ?? '')}  ${gist}`.replace(/ {2,}$/, '').trimEnd();
}

/**
 * The cluster's plan: the mode all hosts pass today and why, who holds it down, and its hosts by their own
 * highest mode and the mode without any one of them; with `hosts` (the cluster's IMC view), their states.
 */
export function planView(plan: ClusterImcPlan, { perHost = false, hosts }: HostRowsOption & { hosts?: ClusterImc['hosts'] } = {}): string {
  const head = fields([
    ['mode all hosts pass', plan.mode ?? '(none)'],
    ['why', plan.reason],
    ['holding it down', firstOf(plan.holdingDown) || '-'],
  ]);
  const without = new Map(plan.withoutHost.map((w) => [w.hostId, w.mode]));
  let rows: string;
  if (perHost) {
    rows = table(plan.hostModes, [
      { header: 'HOST', value: (h) => h.hostId },
      { header: 'OWN HIGHEST MODE', value: (h) => h.mode ?? '(none)' },
      { header: 'CLUSTER MODE WITHOUT IT', value: (h) => (without.has(h.hostId) ? (without.get(h.hostId) ?? '(none)') : '') },
    ], 'no hosts');
  } else {
    // without the IMC view, no column of states (the console keeps it empty while that view loads)
    const states = PLAN_HEADERS.indexOf('States');
    const keep = (_: unknown, i: number) => hosts !== undefined || i !== states;
    rows = groupsTable(PLAN_HEADERS.filter(keep), planRows(plan, hosts).map((r) => ({ key: r.key, cells: r.cells.filter(keep) })));
  }
  return `${head}\n\n${rows}`;
}

/** The reconciliation report: the last pass (when, how many hosts it could judge), then each finding. */
export function reconciliationView(r: ReconciliationReport, kind?: string): string {
  if (r.lastPassAt === null) return `no reconciliation pass yet (one runs every ${formatDuration(r.intervalMs)})`;
  const head = fields([
    ['last pass', `${r.lastPassAt} (every ${formatDuration(r.intervalMs)})`],
    ['hosts checked', r.hostsChecked],
    ['hosts not judged', r.hostsUnknownCount ? `${r.hostsUnknownCount}: ${firstOf(r.hostsUnknown, r.hostsUnknownCount)} (down, or no current report of their VMs)` : 0],
  ]);
  const rows = table(r.items, [
    { header: 'KIND', value: (f) => f.kind },
    { header: 'VM', value: (f) => f.vmId },
    { header: 'HOST', value: (f) => f.hostId },
    { header: 'AGENT SAYS', value: (f) => f.agentState },
    { header: 'INVENTORY SAYS', value: (f) => (f.recordedHostId ? `${f.recordedState ?? ''} on ${f.recordedHostId}`.trim() : 'no record') },
    { header: 'OTHER COPIES', value: (f) => f.otherHostIds.join(', ') },
    { header: 'PAUSED ON', value: (f) => f.pausedHostIds.join(', ') },
    { header: 'SINCE', value: (f) => f.firstSeenAt },
    { header: 'DETAIL', value: (f) => f.detail },
  ], kind ? `no ${kind} VMs: the agents' reports match inventory` : "no findings: the agents' reports match inventory");
  return `${head}\n\n${rows}`;
}
