#!/usr/bin/env node
// What batching the saga's transitions would save in PostgreSQL, measured before anyone builds it.
//
// A transition is one statement (MigrationStore's TRANSITION: the guarded UPDATE of the migration's row with
// its saga, its events into the outbox). This script runs that statement with pgbench against a scratch
// database that has the `migrations` and `outbox` tables with their indexes, two ways, for the same number
// of seconds each:
//   - single: one transition per statement, BENCH_CLIENTS [8] connections (as the schedulers send them);
//   - batch:  BENCH_BATCH [8] transitions of different migrations per statement (json_to_recordset), one
//             connection, and then two;
// and prints, for each, the transitions per second and the machine's busy CPU per transition (from
// /proc/stat, so pgbench's own share is in both). Nothing of flexmig runs: the services are not started.
//
//   node bench/control-plane/transition-batch.mjs      # about 1 minute; needs pgbench (Debian's postgresql-client)
//
// Knobs: BENCH_SECONDS [15], BENCH_CLIENTS [8], BENCH_BATCH [8], DATABASE_URL. The tables' columns and
// indexes are those of apps/scheduler/src/migrations (as of 2026-12-06); the saga is a completed
// migration's (5 KB of JSON), the event one `migration.step-completed`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const seconds = Number(process.env.BENCH_SECONDS ?? 15);
const clients = Number(process.env.BENCH_CLIENTS ?? 8);
const batch = Number(process.env.BENCH_BATCH ?? 8);
const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
const dbName = `flexmig_bench_tb_${process.pid}`;
const dbUrl = new URL(base);
dbUrl.pathname = `/${dbName}`;
const ACTIVE = 64;

const terminal = `('completed', 'rolled-back', 'cancelled', 'failed-needs-attention')`;
const SCHEMA = `
CREATE TABLE migrations (
  id uuid PRIMARY KEY, vm_id uuid NOT NULL, cluster_id uuid NOT NULL, source_host_id text NOT NULL, target_host_id text NOT NULL,
  state text NOT NULL, saga json NOT NULL, vm jsonb NOT NULL, policy jsonb NOT NULL, target_address text NOT NULL,
  version int NOT NULL DEFAULT 1, lease_owner text, lease_until timestamptz, created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, placement jsonb, requested_by text, due_at timestamptz,
  trace_parent text, prediction jsonb, prediction_error text, measured jsonb) WITH (fillfactor = 70);
CREATE UNIQUE INDEX migrations_one_active_per_vm ON migrations (vm_id) WHERE state NOT IN ${terminal};
CREATE INDEX migrations_vm_id ON migrations (vm_id, created_at);
CREATE INDEX migrations_active_lease ON migrations (lease_until) WHERE state NOT IN ${terminal};
CREATE INDEX migrations_queued ON migrations (created_at) WHERE state = 'queued';
CREATE INDEX migrations_due ON migrations (lease_owner, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX migrations_completed_cluster ON migrations (cluster_id, finished_at DESC) WHERE state = 'completed';
CREATE INDEX migrations_completed_pair ON migrations (source_host_id, target_host_id, finished_at DESC) WHERE state = 'completed';
CREATE INDEX migrations_by_age ON migrations (created_at, id);
CREATE TABLE outbox (seq bigserial PRIMARY KEY, event_id text NOT NULL UNIQUE, type text NOT NULL, subject text NOT NULL,
  data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), writer text);
CREATE TABLE active_ids (n int PRIMARY KEY, id uuid NOT NULL);`;

const stepTimeouts = Object.fromEntries(
  ['verify-compatibility', 'transfer-config', 'transfer-memory', 'sync-memory', 'pause-source', 'transfer-state', 'resume-target', 'stop-source', 'commit'].map((s) => [s, 60_000]),
);
/** A saga of about the size a completed one has (5 KB of JSON): its policy and nine steps with results. */
function saga(phase) {
  const steps = Object.keys(stepTimeouts).map((name, i) => ({
    name,
    status: 'done',
    attempts: 1,
    startedAt: 1_765_000_000_000 + i * 3,
    endedAt: 1_765_000_000_002 + i * 3,
    result: { bytesTransferred: 536_870_912, passes: 1, downtimeMs: 12, note: 'x'.repeat(180) },
  }));
  return {
    schema: 1,
    ref: { migrationId: '22a28901-70bc-436c-a924-3cf2416967b3', vmId: '8b58db09-aae7-453b-a784-3bd2f84bf311', sourceHostId: 'host-001', targetHostId: 'host-002' },
    phase,
    policy: { maxAttempts: 3, maxResumeTargetAttempts: 5, maxCompensationAttempts: 3, maxFinishAttempts: 10, stepTimeoutMs: stepTimeouts },
    steps,
  };
}
const event = {
  event_id: 'x',
  type: 'migration.step-completed',
  subject: '22a28901-70bc-436c-a924-3cf2416967b3',
  data: { specversion: '1.0', id: 'e'.repeat(36), source: 'flexmig/scheduler', type: 'migration.step-completed', time: '2026-12-06T04:00:00Z', data: { step: 'transfer-memory', durationMs: 3, result: { bytes: 123_456 } } },
};
// pgbench substitutes `:name`, so the JSON literals keep a space after each colon (JSON.stringify's indent would too)
const lit = (v) => `'${JSON.stringify(v).replaceAll('":', '": ').replaceAll("'", "''")}'`;
const SET = `state = 'transfer-memory', updated_at = now(), due_at = now() + interval '1 min'`;
const OUTBOX = `INSERT INTO outbox (event_id, type, subject, data, created_at, writer)`;

const single = `\\set n random(1, ${ACTIVE})
WITH u AS (UPDATE migrations SET saga = ${lit(saga('transfer-memory'))}::json, ${SET}, version = version + 1, measured = COALESCE(NULL::jsonb, measured)
    WHERE id = (SELECT id FROM active_ids WHERE n = :n) AND lease_owner = 'A' RETURNING id),
  o AS (${OUTBOX} SELECT gen_random_uuid()::text, e.type, e.subject, e.data, now(), 'A'
    FROM u, jsonb_to_recordset(${lit([event])}::jsonb) AS e(event_id text, type text, subject text, data jsonb) ON CONFLICT (event_id) DO NOTHING),
  d AS (DELETE FROM outbox WHERE event_id = ANY('{}'::text[]))
SELECT (SELECT count(*) FROM u)::int AS updated;
`;
const rows = Array.from({ length: batch }, (_, k) => ({ k, saga: saga('transfer-memory'), events: [event] }));
const batched = `\\set n random(0, ${ACTIVE - 1})
WITH b AS (SELECT a.id, r.saga, r.events FROM json_to_recordset(${lit(rows)}::json) AS r(k int, saga json, events jsonb)
    JOIN active_ids a ON a.n = ((:n + r.k) % ${ACTIVE}) + 1),
  u AS (UPDATE migrations m SET saga = b.saga, ${SET}, version = m.version + 1, measured = COALESCE(NULL::jsonb, m.measured)
    FROM b WHERE m.id = b.id AND m.lease_owner = 'A' RETURNING m.id),
  o AS (${OUTBOX} SELECT gen_random_uuid()::text, e.type, e.subject, e.data, now(), 'A'
    FROM b JOIN u ON u.id = b.id, jsonb_to_recordset(b.events) AS e(event_id text, type text, subject text, data jsonb) ON CONFLICT (event_id) DO NOTHING),
  d AS (DELETE FROM outbox WHERE event_id = ANY('{}'::text[]))
SELECT (SELECT count(*) FROM u)::int AS updated;
`;

/** The machine's busy jiffies (user, nice, system, irq, softirq). */
function busy() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6];
}
const HZ = 100;

async function main() {
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  const dir = mkdtempSync(join(tmpdir(), 'flexmig-bench-tb-'));
  try {
    const db = new pg.Client({ connectionString: dbUrl.toString() });
    await db.connect();
    await db.query(SCHEMA);
    const done = JSON.stringify(saga('completed'));
    const common = `gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'host-001', 'host-002'`;
    const vm = `'{"memoryMiB": 512, "vcpus": 1}'::jsonb, '{}'::jsonb, '127.0.0.1:49152'`;
    // a scheduler's table after 10,000 migrations, and the 64 it drives now
    await db.query(`INSERT INTO migrations (id, vm_id, cluster_id, source_host_id, target_host_id, state, saga, vm, policy, target_address, version, finished_at)
      SELECT ${common}, 'completed', $1::json, ${vm}, 10, now() FROM generate_series(1, 10000)`, [done]);
    await db.query(`INSERT INTO migrations (id, vm_id, cluster_id, source_host_id, target_host_id, state, saga, vm, policy, target_address, lease_owner, lease_until, due_at)
      SELECT ${common}, 'transfer-memory', $1::json, ${vm}, 'A', now() + interval '1 hour', now() + interval '1 min' FROM generate_series(1, ${ACTIVE})`, [done]);
    await db.query(`INSERT INTO active_ids SELECT row_number() OVER (), id FROM migrations WHERE lease_owner = 'A'`);
    await db.query('VACUUM ANALYZE migrations');
    await db.end();
    writeFileSync(join(dir, 'single.sql'), single);
    writeFileSync(join(dir, 'batch.sql'), batched);

    console.log(`flexmig transition batching — ${cpus().length} CPUs (${cpus()[0].model.trim()}), ${seconds} s per run, database ${dbName}`);
    const run = (label, file, conns, perStatement) => {
      const before = busy();
      const out = execFileSync('pgbench', ['-n', '-M', 'prepared', '-c', String(conns), '-j', String(Math.min(conns, 2)), '-T', String(seconds), '-f', join(dir, file), dbUrl.toString()], { encoding: 'utf8' });
      const cpuMs = ((busy() - before) * 1000) / HZ;
      const tps = Number(/^tps = ([\d.]+)/m.exec(out)?.[1]);
      if (!Number.isFinite(tps) || tps <= 0) throw new Error(`pgbench printed no rate:\n${out}`);
      const transitions = tps * perStatement * seconds;
      console.log(`  ${label.padEnd(44)} ${(tps * perStatement).toFixed(0).padStart(7)} transitions/s   ${(cpuMs / transitions).toFixed(3)} ms of machine CPU each`);
    };
    for (let round = 1; round <= 2; round++) {
      run(`single, ${clients} connections (round ${round})`, 'single.sql', clients, 1);
      run(`${batch} per statement, 1 connection (round ${round})`, 'batch.sql', 1, batch);
      run(`${batch} per statement, 2 connections (round ${round})`, 'batch.sql', 2, batch);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
