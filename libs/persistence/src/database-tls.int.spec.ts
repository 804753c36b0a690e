/**
 * PostgreSQL over TLS through DATABASE_URL alone: a PostgreSQL of the test's own serving TLS with a
 * certificate of a CA made here (for the name `localhost` only), and what the services do at start —
 * ensureDatabaseAndSchema, then a TypeORM DataSource that runs the migrations — with `sslmode=verify-full`
 * and `sslrootcert` in the URL. Skips without the PostgreSQL server binaries or openssl.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { issueCertificate, makeCa, type CaFiles } from '@flexmig/nats-auth';
import { PostgresServerProcess } from '@flexmig/testing';
import { ensureDatabaseAndSchema, serviceDataSourceOptions } from './database';

const missing = [!PostgresServerProcess.available() && 'the PostgreSQL server binaries', spawnSync('openssl', ['version']).status !== 0 && 'openssl'].filter(Boolean);
if (missing.length) console.warn(`SKIPPED: PostgreSQL over TLS needs ${missing.join(' and ')}`);
const d = missing.length ? describe.skip : describe;

d('DATABASE_URL with sslmode=verify-full (PostgreSQL over TLS)', () => {
  jest.setTimeout(60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'flexmig-pg-tls-'));
  let ca: CaFiles;
  let other: CaFiles;
  let pg: PostgresServerProcess;

  beforeAll(async () => {
    ca = makeCa({ cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca.key') }, 'flexmig test CA', 1);
    other = makeCa({ cert: path.join(dir, 'other.pem'), key: path.join(dir, 'other.key') }, 'someone else', 1);
    issueCertificate({ ca, cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), commonName: 'localhost', names: ['localhost'], usage: ['server'], days: 1 });
    pg = await new PostgresServerProcess({ tls: { certFile: path.join(dir, 'server.crt'), keyFile: path.join(dir, 'server.key') } }).start();
  });
  afterAll(async () => {
    await pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const url = (host: string, rootCert: string, database = 'flexmig_tls') =>
    `postgres://postgres@${host}:${pg.port}/${database}?sslmode=verify-full&sslrootcert=${encodeURIComponent(rootCert)}`;

  it('given the CA that signed the server\'s certificate, then a service creates its schema, runs its migrations and talks over TLS', async () => {
    const u = url('localhost', ca.cert);
    await ensureDatabaseAndSchema(u, 'tls_check');
    const ds = new DataSource(serviceDataSourceOptions({ url: u, schema: 'tls_check', entities: [], migrations: [] }));
    await ds.initialize();
    try {
      const [row] = await ds.query('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(row.ssl).toBe(true);
      expect(row.version).toMatch(/^TLSv1\.[23]$/);
      const [schema] = await ds.query("SELECT count(*)::int AS n FROM information_schema.schemata WHERE schema_name = 'tls_check'");
      expect(schema.n).toBe(1);
    } finally {
      await ds.destroy();
    }
  });

  it('given a CA that did not sign the server\'s certificate, then the connection is refused with a message that names TLS', async () => {
    await expect(ensureDatabaseAndSchema(url('localhost', other.cert, 'flexmig_tls_other'), 'tls_check')).rejects.toThrow(
      /cannot reach PostgreSQL at localhost:\d+ \(.*certificate.*\).*sslrootcert/,
    );
  });

  it('given an address the certificate does not name (127.0.0.1, the certificate says localhost), then verify-full refuses it', async () => {
    await expect(ensureDatabaseAndSchema(url('127.0.0.1', ca.cert, 'flexmig_tls_ip'), 'tls_check')).rejects.toThrow(/IP: 127\.0\.0\.1 is not in the cert's list|does not match|altnames/i);
  });
});
