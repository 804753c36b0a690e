import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { Counter, Gauge, Histogram } from 'prom-client';
import {
  ListAgentVms,
  PauseVm,
  type PageQuery,
  ReconciliationKind,
  ReconciliationReport,
  ReconciliationReportSchema,
  ReportedVm,
  VmMissing,
  VmOrphaned,
  VmSplitBrain,
  unknownHostsOfPass,
  vmDigest,
} from '@flexmig/contracts';
import { NatsBus } from '@flexmig/messaging';
import { Repeats, sleep } from '@flexmig/timing';
import { INVENTORY_CONFIG, InventoryConfig } from '../config';
import { EventOutbox } from '../events/event-outbox';
import { Detected, detectInSlices, HostReport, RecordedVm } from './detect';
import { findingsPage } from './findings-page';

const findingsNow = new Gauge({
  name: 'flexmig_reconciliation_findings',
  help: 'Disagreements between inventory and the agents at the last reconciliation pass, by kind (orphaned, missing, split-brain).',
  labelNames: ['kind'],
});
const findingsDetected = new Counter({
  name: 'flexmig_reconciliation_detected_total',
  help: 'Disagreements between inventory and the agents seen for the first time, by kind.',
  labelNames: ['kind'],
});
const hostsUnknown = new Gauge({
  name: 'flexmig_reconciliation_hosts_unknown',
  help: 'Hosts whose VM set the last reconciliation pass could not judge (down, or no current report).',
});

const passes = new Counter({
  name: 'flexmig_reconciliation_passes_total',
  help: 'Reconciliation passes of this replica, by result (ok, failed): no ok pass for a while means no split brain is seen (FlexmigReconciliationStalled).',
  labelNames: ['result'],
});
// both series from the start: an alert on "no ok pass" needs the ok series to exist while every pass fails
passes.inc({ result: 'ok' }, 0);
passes.inc({ result: 'failed' }, 0);
const passDuration = new Histogram({
  name: 'flexmig_reconciliation_pass_duration_seconds',
  help: 'How long a reconciliation pass took, from asking stale agents to recording its findings.',
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

/** How much newer than a VM's record a host's report must be to judge it: a report taken just before a relocation shows the old world. */
export const REPORT_SETTLE_MS = 2_000;
/** At most this many stale hosts are asked for their VM list per pass, this many at a time, each within this long. */
const ASK_PER_PASS = 100;
const ASK_CONCURRENCY = 8;
const AGENT_TIMEOUT_MS = 3_000;

/**
 * Every RECONCILE_INTERVAL_MS: the agents' reports against inventory's records (DESIGN.md,
 * Reconciliation). Each pass reads in one short read-only transaction, decides (pure: detect.ts, in
 * slices between which the service answers its requests), then — with no transaction open — fences split
 * brains (PauseVm to the copies that are not inventory's record) and records the findings; a finding seen
 * for the first time is published as an event.
 */
@Injectable()
export class ReconciliationService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(ReconciliationService.name);
  private readonly failures = new Repeats(this.log);
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private last: { at: Date; checked: number; hostsUnknownCount: number; hostsUnknown: string[] } | undefined;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: NatsBus,
    private readonly events: EventOutbox,
    @Inject(INVENTORY_CONFIG) private readonly config: InventoryConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      if (this.running) return; // a slow pass is not stacked on
      this.running = this.pass()
        .then(
          () => this.failures.recovered('the reconciliation pass'),
          (e) => this.failures.failed(`reconciliation pass failed: ${(e as Error).message}`),
        )
        .finally(() => (this.running = undefined));
    }, this.config.reconcileIntervalMs);
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One pass, counted and timed; returns what it found (tests call it directly). */
  async pass(): Promise<Detected[]> {
    const timed = passDuration.startTimer();
    try {
      const findings = await this.judge();
      passes.inc({ result: 'ok' });
      timed();
      return findings;
    } catch (e) {
      passes.inc({ result: 'failed' });
      throw e;
    }
  }

  private async judge(): Promise<Detected[]> {
    await this.refreshStaleReports();
    // rows in the shapes detect() takes, so that the pass builds no second copy of 10,000 VMs
    const { hosts, vms, migrating } = await this.db.transaction('REPEATABLE READ', async (m) => {
      const hosts: HostReport[] = await m.query(
        `SELECT id AS "hostId", reported_at AS "reportedAt", coalesce(reported_vms, '[]'::jsonb) AS vms,
                (state = 'up' AND reported_vms IS NOT NULL AND reported_digest IS NOT NULL AND reported_digest IS NOT DISTINCT FROM vm_digest) AS current
           FROM hosts`,
      );
      const vms: RecordedVm[] = await m.query('SELECT id, host_id AS "hostId", state, updated_at AS "updatedAt" FROM vms');
      const migrating: { vm_id: string }[] = await m.query('SELECT DISTINCT vm_id FROM reservations');
      return { hosts, vms, migrating: new Set(migrating.map((r) => r.vm_id)) };
    });
    // in slices, with the event loop let go between them (sleep(0): one turn): requests keep being answered during a pass
    const result = await detectInSlices({ hosts, vms, migrating, settleMs: REPORT_SETTLE_MS }, () => sleep(0));
    const paused = new Map<Detected, { paused: string[]; errors: string[] }>();
    for (const f of result.findings.filter((x) => x.kind === 'split-brain')) paused.set(f, await this.fence(f, hosts));
    await this.record(result.findings, paused);
    this.last = { at: new Date(), checked: result.checked.length, ...unknownHostsOfPass(result.unknown) };
    hostsUnknown.set(this.last.hostsUnknownCount);
    return result.findings;
  }

  /**
   * What GET /api/v1/reconciliation answers: this replica's summary of its last pass, and a page of the
   * findings of the last pass (any replica's), in key order (findings-page.ts).
   */
  async report(q: { kind?: ReconciliationKind } & PageQuery): Promise<ReconciliationReport> {
    const { items, nextCursor } = await findingsPage(this.db, q);
    return ReconciliationReportSchema.parse({
      lastPassAt: this.last?.at.toISOString() ?? null,
      intervalMs: this.config.reconcileIntervalMs,
      hostsChecked: this.last?.checked ?? 0,
      hostsUnknownCount: this.last?.hostsUnknownCount ?? 0,
      hostsUnknown: this.last?.hostsUnknown ?? [],
      items,
      nextCursor,
    });
  }

  /**
   * Hosts whose last full report does not match their latest heartbeat's digest (a beat that carried the
   * list was lost) are asked for it: agent.{hostId}.vm.list, outside any transaction.
   */
  private async refreshStaleReports(): Promise<void> {
    const stale: { id: string }[] = await this.db.query(
      `SELECT id FROM hosts WHERE state = 'up' AND vm_digest IS NOT NULL AND vm_digest IS DISTINCT FROM reported_digest ORDER BY reported_at NULLS FIRST LIMIT $1`,
      [ASK_PER_PASS],
    );
    const queue = stale.map((h) => h.id);
    const worker = async () => {
      for (let hostId = queue.shift(); hostId; hostId = queue.shift()) {
        try {
          const reply = await this.bus.request(ListAgentVms, {}, { params: { hostId }, timeoutMs: AGENT_TIMEOUT_MS });
          const vms: ReportedVm[] = reply.vms.map((v) => ({ vmId: v.vmId, state: v.state, ...(v.migrationId ? { migrationId: v.migrationId } : {}) }));
          const digest = vmDigest(vms);
          await this.db.query(`UPDATE hosts SET reported_vms = $2::jsonb, reported_digest = $3, reported_at = now() WHERE id = $1`, [hostId, JSON.stringify(vms), digest]);
        } catch (e) {
          this.log.verbose(`the agent of ${hostId} did not list its VMs: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(ASK_CONCURRENCY, queue.length) }, worker));
  }

  /** A split brain is never settled by guessing: every copy that is not inventory's record and still runs is paused, never destroyed. */
  private async fence(f: Detected, reports: HostReport[]): Promise<{ paused: string[]; errors: string[] }> {
    const paused: string[] = [];
    const errors: string[] = [];
    for (const hostId of f.otherHostIds) {
      const state = reports.find((h) => h.hostId === hostId)?.vms.find((v) => v.vmId === f.vmId)?.state;
      if (state === 'paused') {
        paused.push(hostId);
        continue;
      }
      try {
        const reason = `split brain: VM ${f.vmId} also runs on ${f.hostId}, inventory's record; this copy is paused and kept for an operator`;
        await this.bus.request(PauseVm, { vmId: f.vmId, reason }, { params: { hostId }, timeoutMs: AGENT_TIMEOUT_MS });
        paused.push(hostId);
        this.log.warn(`VM ${f.vmId}: split brain, the copy on ${hostId} is paused (inventory records it on ${f.hostId})`);
      } catch (e) {
        errors.push(`${hostId}: ${(e as Error).message}`);
        this.log.error(`VM ${f.vmId}: split brain, the copy on ${hostId} could not be paused: ${(e as Error).message}`);
      }
    }
    return { paused, errors };
  }

  /** The findings table becomes this pass's set; a finding new to it is published once. */
  private async record(findings: Detected[], fenced: Map<Detected, { paused: string[]; errors: string[] }>): Promise<void> {
    const fresh: { f: Detected; firstSeenAt: Date }[] = [];
    await this.db.transaction(async (m) => {
      for (const f of findings) {
        const pausedHostIds = fenced.get(f)?.paused ?? [];
        const rows: { inserted: boolean; first_seen_at: Date }[] = await m.query(
          `INSERT INTO reconciliation_findings (kind, vm_id, host_id, other_host_ids, agent_state, recorded_host_id, recorded_state, paused_host_ids, detail)
           VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8::jsonb, $9)
           ON CONFLICT (kind, vm_id, host_id) DO UPDATE SET other_host_ids = EXCLUDED.other_host_ids, agent_state = EXCLUDED.agent_state,
             recorded_host_id = EXCLUDED.recorded_host_id, recorded_state = EXCLUDED.recorded_state, detail = EXCLUDED.detail, last_seen_at = now(),
             paused_host_ids = (SELECT coalesce(jsonb_agg(DISTINCT x ORDER BY x), '[]'::jsonb) FROM jsonb_array_elements_text(reconciliation_findings.paused_host_ids || EXCLUDED.paused_host_ids) x)
           RETURNING (xmax = 0) AS inserted, first_seen_at`,
          [f.kind, f.vmId, f.hostId, JSON.stringify(f.otherHostIds), f.agentState, f.recordedHostId, f.recordedState, JSON.stringify(pausedHostIds), f.detail],
        );
        if (rows[0]?.inserted) {
          // its event with it: a finding recorded is announced, once, whatever happens after the commit
          await this.announce(m, f, rows[0].first_seen_at, fenced.get(f));
          fresh.push({ f, firstSeenAt: rows[0].first_seen_at });
        }
      }
      const keep = findings.map((f) => `${f.kind}|${f.vmId}|${f.hostId}`);
      await m.query(`DELETE FROM reconciliation_findings WHERE NOT (kind || '|' || vm_id::text || '|' || host_id = ANY($1::text[]))`, [keep]);
    });
    const counts: Record<ReconciliationKind, number> = { orphaned: 0, missing: 0, 'split-brain': 0 };
    for (const f of findings) counts[f.kind] += 1;
    for (const [kind, n] of Object.entries(counts)) findingsNow.set({ kind }, n);
    if (fresh.length > 0) void this.events.committed();
    for (const { f } of fresh) {
      findingsDetected.inc({ kind: f.kind });
      this.log.warn(`reconciliation: ${f.kind}: ${f.detail}`);
    }
  }

  private async announce(m: EntityManager, f: Detected, at: Date, fenced?: { paused: string[]; errors: string[] }): Promise<void> {
    const opts = { id: `${f.vmId}:${f.kind}:${f.hostId}:${at.getTime()}`, subject: f.vmId, time: at };
    const base = { vmId: f.vmId, hostId: f.hostId, detectedAt: at.toISOString() };
    if (f.kind === 'missing') await this.events.add(m, VmMissing, { ...base, recordedState: f.recordedState ?? 'running' }, opts);
    else if (f.kind === 'orphaned') await this.events.add(m, VmOrphaned, { ...base, agentState: f.agentState ?? 'running', recordedHostId: f.recordedHostId }, opts);
    else await this.events.add(m, VmSplitBrain, { ...base, otherHostIds: f.otherHostIds, paused: fenced?.paused ?? [], pauseErrors: fenced?.errors ?? [] }, opts);
  }
}
