import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { httpJson, startTestDatabase, startTestNats, type TestDatabase, type TestNats, waitFor } from '../infra';
import { freePort, ServiceProcess } from '../processes';

export type FuzzApp = 'cpu-compat' | 'inventory' | 'scheduler' | 'agent' | 'console';

/** The host the stack's one sim agent runs (the subject token of its `agent.{hostId}.…` subjects). */
export const FUZZ_HOST_ID = 'fuzz-host';

/**
 * Columns (or whole tables, `*`) that background work writes whatever the requests do: heartbeats, the
 * host-down check, the scheduler's leases and reconcile passes, the outbox relays. They are left out of
 * the snapshot so that a difference means a request wrote.
 */
export const VOLATILE: Record<string, string[] | '*'> = {
  // heartbeats, and the agents' VM reports they carry (reconciliation)
  'inventory.hosts': ['last_heartbeat_at', 'state', 'vm_digest', 'reported_vms', 'reported_digest', 'reported_at'],
  // the reconcile pass writes what it finds
  'inventory.reconciliation_findings': '*',
  // events written with an earlier request's change, published and deleted by the outbox a moment later
  'inventory.event_outbox': '*',
  'scheduler.migrations': ['lease_owner', 'lease_until', 'updated_at', 'version', 'saga', 'state', 'finished_at', 'due_at'],
  'scheduler.outbox': '*',
  'scheduler.outbox_dead_letter': '*',
  'scheduler.evacuations': ['updated_at', 'state', 'finished_at', 'items'],
};

/**
 * The services (real processes, from dist/: `npm run build` first) on NATS and PostgreSQL of the suite's
 * own, with one sim agent so that requests that reach a host find one.
 */
export class FuzzStack {
  readonly urls: Partial<Record<FuzzApp, string>> = {};
  readonly processes: Partial<Record<FuzzApp, ServiceProcess>> = {};
  readonly stateDir = mkdtempSync(path.join(tmpdir(), 'flexmig-fuzz-agent-'));
  nats!: TestNats;
  db!: TestDatabase;
  private pg?: Client;
  private snapshotSql?: string;

  constructor(
    readonly suite: string,
    readonly apps: FuzzApp[],
  ) {}

  async start(): Promise<this> {
    this.nats = await startTestNats(`fuzz_${this.suite}`);
    this.db = await startTestDatabase(`fuzz_${this.suite}`);
    const common = { NATS_URL: this.nats.url, SUBJECT_PREFIX: this.nats.prefix, DATABASE_URL: this.db.url, LOG_LEVEL: 'error' };
    const extra: Record<FuzzApp, Record<string, string>> = {
      'cpu-compat': {},
      inventory: {},
      scheduler: { RECONCILE_INTERVAL_MS: '200' },
      agent: { HOST_ID: FUZZ_HOST_ID, CLUSTER_NAME: 'fuzz', SIM_CPU: 'Haswell', SIM_TIME_SCALE: '0', AGENT_STATE_DIR: this.stateDir },
      console: {}, // the services' URLs, once they listen (below)
    };
    // one at a time (in parallel they miss their start-up deadline on a busy machine); inventory before
    // the scheduler and the agent, which talk to it at start
    const order: FuzzApp[] = ['cpu-compat', 'inventory', 'scheduler', 'agent', 'console'];
    for (const app of order.filter((a) => this.apps.includes(a))) {
      const port = await freePort();
      this.urls[app] = `http://127.0.0.1:${port}`;
      if (app === 'console') {
        const routed = { INVENTORY_URL: this.urls.inventory, SCHEDULER_URL: this.urls.scheduler, CPU_COMPAT_URL: this.urls['cpu-compat'] };
        extra.console = Object.fromEntries(Object.entries(routed).filter((e): e is [string, string] => e[1] !== undefined));
      }
      this.processes[app] = new ServiceProcess(app, { ...common, ...extra[app], PORT: String(port) }, port);
      await this.processes[app].start();
    }
    if (this.urls.inventory && this.apps.includes('agent')) {
      await waitFor('the agent to register', async () => (await httpJson(this.urls.inventory!, 'GET', `/api/v1/hosts/${FUZZ_HOST_ID}`)).status === 200, { timeoutMs: 30_000 });
    }
    this.pg = new Client({ connectionString: this.db.url });
    await this.pg.connect();
    return this;
  }

  /**
   * A cheap picture of what the services keep: per table of their schemas, the row count and a checksum
   * of the rows (without the VOLATILE columns), and a checksum of the agent's state files.
   */
  async snapshot(): Promise<string> {
    this.snapshotSql ??= await this.buildSnapshotSql();
    const rows = this.snapshotSql ? (await this.pg!.query(this.snapshotSql)).rows : [];
    const files = createHash('sha256');
    for (const name of readdirSync(this.stateDir).sort()) {
      const file = path.join(this.stateDir, name);
      if (statSync(file).isFile()) files.update(name).update(readFileSync(file));
    }
    return JSON.stringify({ tables: rows, agentState: files.digest('hex') });
  }

  private async buildSnapshotSql(): Promise<string> {
    const { rows } = await this.pg!.query<{ table_schema: string; table_name: string; column_name: string }>(
      `SELECT table_schema, table_name, column_name FROM information_schema.columns
        WHERE table_schema IN ('inventory', 'scheduler') AND table_name <> 'typeorm_migrations' ORDER BY table_schema, table_name, ordinal_position`,
    );
    const tables = new Map<string, string[]>();
    for (const r of rows) {
      const name = `${r.table_schema}.${r.table_name}`;
      const volatile = VOLATILE[name];
      if (volatile === '*') continue;
      if (!tables.has(name)) tables.set(name, []);
      if (!volatile?.includes(r.column_name)) tables.get(name)!.push(`"${r.column_name}"`);
    }
    return [...tables]
      .map(([name, cols]) => {
        const [schema, table] = name.split('.');
        const row = `md5(row(${cols.join(', ')})::text)`;
        return `SELECT '${name}' AS t, count(*)::int AS n, md5(coalesce(string_agg(${row}, ',' ORDER BY ${row}), '')) AS h FROM "${schema}"."${table}"`;
      })
      .join(' UNION ALL ');
  }

  /** Each service still runs and answers its liveness endpoint. */
  async health(): Promise<Record<string, number | string>> {
    const out: Record<string, number | string> = {};
    for (const app of this.apps) {
      const r = await fetch(`${this.urls[app]}/health/live`).catch((e: Error) => e);
      out[app] = r instanceof Error ? `unreachable: ${r.message}` : r.status;
    }
    return out;
  }

  /** The last lines of each process's output (for a failure's message). */
  tails(): string {
    return this.apps.map((a) => `--- ${a}\n${this.processes[a]?.tail(15) ?? ''}`).join('\n');
  }

  async stop(): Promise<void> {
    await this.pg?.end().catch(() => undefined);
    for (const app of [...this.apps].reverse()) await this.processes[app]?.stop();
    await this.db?.stop();
    await this.nats?.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
